"""Lambda's Invoke data plane: handlers run from their deployment packages in worker processes."""

from emulation.awslambda.invoke import InvokeResult, LambdaService

__all__ = ["InvokeResult", "LambdaService"]
