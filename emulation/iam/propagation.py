"""IAM's eventual consistency: a role created a moment ago cannot be assumed yet.

On AWS a new role (or a change to its trust policy) takes seconds to reach every region, and the
services that assume it refuse meanwhile: Lambda's CreateFunction answers "The role defined for
the function cannot be assumed by Lambda", SageMaker's CreateTrainingJob / CreateModel "Could not
assume role ...". Code that creates a role and uses it at once works on a laptop and fails on AWS,
so the emulator refuses such a role for ``role_propagation_seconds`` after its CreateRole
(default 2 s; ``SAGELOCAL_ROLE_PROPAGATION_SECONDS=0`` turns it off). Roles that IAM does not
know (e.g. the default local execution role) are accepted, as before.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re

from moto.backends import get_backend
from werkzeug.wrappers import Request

from emulation.protocol import AwsError, error_response

_CREATE_FUNCTION_PATH = re.compile(r"^/20\d\d-\d\d-\d\d/functions/?$")


class RolePropagation:
    def __init__(self, account_id: str, seconds: float):
        self.account_id = account_id
        self.seconds = seconds

    @classmethod
    def from_config(cls, config) -> RolePropagation:
        return cls(config.account_id, config.role_propagation_seconds)

    def _age(self, role_arn: str) -> float | None:
        """Seconds since IAM created this role; None when IAM does not know it."""
        partition = role_arn.split(":", 2)[1] if role_arn.count(":") >= 2 else "aws"
        try:
            roles = get_backend("iam")[self.account_id][partition].get_roles()
        except (KeyError, ValueError):
            return None
        role = next((r for r in roles if r.arn == role_arn), None)
        if role is None:
            return None
        created = role.create_date.replace(tzinfo=None)
        return (dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - created).total_seconds()

    def assumable(self, role_arn: str | None) -> bool:
        if not role_arn or self.seconds <= 0:
            return True
        age = self._age(role_arn)
        return age is None or age >= self.seconds

    def require_for_sagemaker(self, role_arn: str | None) -> None:
        """SageMaker's refusal of a role it cannot assume (CreateTrainingJob, CreateModel...)."""
        if not self.assumable(role_arn):
            raise AwsError(
                "ValidationException",
                f"Could not assume role {role_arn}. Please ensure that the role exists and allows "
                "principal 'sagemaker.amazonaws.com' to assume the role.",
            )

    def lambda_gate(self, moto_app):
        """WSGI in front of moto: Lambda's CreateFunction refuses a role that is too new."""

        def app(environ, start_response):
            if environ.get("REQUEST_METHOD") == "POST" and _CREATE_FUNCTION_PATH.match(
                environ.get("PATH_INFO", "")
            ):
                body = Request(environ).get_data()
                environ["wsgi.input"] = io.BytesIO(body)
                environ["CONTENT_LENGTH"] = str(len(body))
                try:
                    role = json.loads(body or b"{}").get("Role")
                except (ValueError, AttributeError):
                    role = None
                if isinstance(role, str) and not self.assumable(role):
                    refusal = AwsError(
                        "InvalidParameterValueException",
                        "The role defined for the function cannot be assumed by Lambda.",
                        Type="User",
                    )
                    return error_response(refusal)(environ, start_response)
            return moto_app(environ, start_response)

        return app
