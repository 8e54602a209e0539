"""sagelocal workflows: SageMaker workflows that run locally or on AWS."""
