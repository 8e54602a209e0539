"""IAM where AWS enforces it at run time: who may invoke a function, and what a role may call.

Two checks, on by default (``SAGELOCAL_ENFORCE_IAM=0`` turns both off), because they are the two
mistakes that pass every local test and then fail on AWS:

* API Gateway may invoke a function only if the function's resource policy (AddPermission)
  allows ``apigateway.amazonaws.com`` to ``lambda:InvokeFunction`` it, from this API's ARN.
* A request signed with temporary role credentials (a Lambda function's, or any AssumeRole session)
  or an IAM user's key is allowed only if that identity's policies allow the action on the resource.
  The emulator's own key is the account's root and may do anything.

Policy evaluation is moto's (``moto.iam.access_control``): Allow/Deny statements, Action/NotAction
and Resource wildcards. On top, the two things moto leaves out that these checks need: a
statement's service ``Principal`` and its ``AWS:SourceArn`` condition in resource policies.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from moto.iam.access_control import (
    AssumedRoleAccessKey,
    CreateAccessKeyFailure,
    IAMPolicy,
    IAMUserAccessKey,
    PermissionResult,
)

from emulation.credentials import Principal


def enforcing() -> bool:
    return os.environ.get("SAGELOCAL_ENFORCE_IAM", "1") != "0"


@dataclass(frozen=True)
class Action:
    """What a request does, in IAM's terms."""

    name: str  # e.g. sagemaker:InvokeEndpoint
    resource: str  # an ARN, or * when the action has no resource


def not_authorized(principal: Principal, action: Action) -> str:
    """The message AWS gives when no identity-based policy allows the action."""
    on = f" on resource: {action.resource}" if action.resource != "*" else ""
    return (
        f"User: {principal.arn} is not authorized to perform: {action.name}{on} "
        f"because no identity-based policy allows the {action.name} action"
    )


def identity_allows(account_id: str, principal: Principal, action: Action) -> bool:
    """Whether the principal's identity-based policies allow ``action`` (always, for the root key)."""
    if principal.is_root or action.name == "sts:GetCallerIdentity":
        return True
    policies = _policies(account_id, principal)
    allowed = False
    for policy in policies:
        result = IAMPolicy(policy).is_action_permitted(action.name, action.resource)
        if result == PermissionResult.DENIED:
            return False
        allowed = allowed or result == PermissionResult.PERMITTED
    return allowed


def _policies(account_id: str, principal: Principal) -> list:
    partition = principal.arn.split(":")[1]
    try:
        if principal.role_name is not None:
            key = AssumedRoleAccessKey(
                account_id,
                partition,
                principal.access_key_id,
                {"X-Amz-Security-Token": principal.session_token},
            )
        else:
            key = IAMUserAccessKey(
                account_id, partition, principal.policy_key_id or principal.access_key_id, {}
            )
        return key.collect_policies()
    except (CreateAccessKeyFailure, KeyError):  # the role or user has gone: nothing is allowed
        return []


def resource_policy_allows(policy: str | None, service: str, action: Action, source_arn: str) -> bool:
    """Whether a resource policy lets ``service`` (e.g. apigateway.amazonaws.com) do ``action`` from
    ``source_arn``: the statements naming that service, whose SourceArn condition matches, evaluated
    by moto for action and resource."""
    if not policy:
        return False
    statements = json.loads(policy).get("Statement", [])
    relevant = [
        {key: value for key, value in statement.items() if key not in ("Principal", "Condition")}
        for statement in (statements if isinstance(statements, list) else [statements])
        if _names_service(statement.get("Principal"), service) and _source_matches(statement, source_arn)
    ]
    if not relevant:
        return False
    result = IAMPolicy(json.dumps({"Statement": relevant})).is_action_permitted(action.name, action.resource)
    return result == PermissionResult.PERMITTED


def _names_service(principal, service: str) -> bool:
    if principal == "*":
        return True
    named = principal.get("Service") if isinstance(principal, dict) else None
    return service in (named if isinstance(named, list) else [named])


def _source_matches(statement: dict, source_arn: str) -> bool:
    for operator, conditions in (statement.get("Condition") or {}).items():
        for key, expected in conditions.items():
            if key.lower() != "aws:sourcearn":
                continue
            patterns = expected if isinstance(expected, list) else [expected]
            wildcards = operator in ("ArnLike", "StringLike")
            if not any(_arn_matches(pattern, source_arn, wildcards) for pattern in patterns):
                return False
    return True


def _arn_matches(pattern: str, arn: str, wildcards: bool) -> bool:
    if not wildcards:
        return pattern == arn
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


# -- what a request does ------------------------------------------------------------------------------
#: SageMaker request members that name the resource an operation acts on -> the ARN's resource type.
_SAGEMAKER_RESOURCES = {
    "TrainingJobName": "training-job",
    "TransformJobName": "transform-job",
    "HyperParameterTuningJobName": "hyper-parameter-tuning-job",
    "ProcessingJobName": "processing-job",
    "ModelName": "model",
    "EndpointConfigName": "endpoint-config",
    "EndpointName": "endpoint",
}
_S3_BUCKET_SUBRESOURCE_ACTIONS = {"location": "s3:GetBucketLocation", "delete": "s3:DeleteObject"}


def request_action(
    environ, service: str, *, region: str, account_id: str, params: dict | None = None
) -> Action | None:
    """The IAM action and resource of a request, or None where the emulator cannot name them
    (then it is not checked). ``params``: the decoded JSON body or the query/form parameters."""
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    params = params or {}
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if service == "sagemaker":
        if path.startswith("/endpoints/"):
            name = path.split("/")[2]
            return Action(
                "sagemaker:InvokeEndpoint", f"arn:aws:sagemaker:{region}:{account_id}:endpoint/{name.lower()}"
            )
        operation = target.partition(".")[2]
        for member, kind in _SAGEMAKER_RESOURCES.items():
            if isinstance(params.get(member), str):
                resource = f"arn:aws:sagemaker:{region}:{account_id}:{kind}/{params[member].lower()}"
                return Action(f"sagemaker:{operation}", resource)
        return Action(f"sagemaker:{operation}", "*")
    if target:
        return Action(f"{service}:{target.partition('.')[2]}", "*")
    if service == "lambda" and path.startswith("/2015-03-31/functions/"):
        if not path.endswith("/invocations"):
            return None
        name = path.split("/")[3]
        arn = name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{account_id}:function:{name}"
        qualifier = params.get("Qualifier")
        return Action("lambda:InvokeFunction", f"{arn}:{qualifier}" if qualifier else arn)
    if service == "apigateway":
        return Action(f"apigateway:{method}", f"arn:aws:apigateway:{region}::{path}")
    if service in ("iam", "sts") and params.get("Action"):
        resource = params.get("RoleArn", "*") if params["Action"] == "AssumeRole" else "*"
        return Action(f"{service}:{params['Action']}", resource)
    if service == "s3":
        return _s3_action(method, path, environ.get("QUERY_STRING", ""))
    return None


def _s3_action(method: str, path: str, query: str) -> Action | None:
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return Action("s3:ListAllMyBuckets", "*") if method == "GET" else None
    arguments = {part.partition("=")[0] for part in query.split("&") if part}
    if key:
        resource = f"arn:aws:s3:::{bucket}/{key}"
        if method in ("GET", "HEAD"):
            return Action("s3:GetObject", resource)
        if method in ("PUT", "POST"):
            return Action("s3:PutObject", resource)
        if method == "DELETE":
            return Action(
                "s3:AbortMultipartUpload" if "uploadId" in arguments else "s3:DeleteObject", resource
            )
        return None
    resource = f"arn:aws:s3:::{bucket}"
    for argument, action in _S3_BUCKET_SUBRESOURCE_ACTIONS.items():
        if argument in arguments:
            return Action(action, f"{resource}/*" if action == "s3:DeleteObject" else resource)
    return {
        "GET": Action("s3:ListBucket", resource),
        "HEAD": Action("s3:ListBucket", resource),
        "PUT": Action("s3:CreateBucket", resource),
        "DELETE": Action("s3:DeleteBucket", resource),
    }.get(method)
