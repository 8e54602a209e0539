"""A stage's deployment, frozen, and how a request finds its resource and method in it.

On AWS a deployment is a snapshot: editing a method changes nothing until the API is deployed again.
moto keeps only the live API, so a :class:`Deployment` copies what execute-api needs from it; the
service takes that copy the first time a deployment serves a request (see ``ExecuteApi``).

Matching follows API Gateway: the path is matched segment by segment, a literal segment beats a
``{param}``, which beats a greedy ``{proxy+}``; a method of the request's verb beats ``ANY``; a
trailing slash is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

_LITERAL, _PARAMETER, _GREEDY = 0, 1, 2  # ranks: lower is more specific
DEFAULT_TIMEOUT_MS = 29000


@dataclass(frozen=True)
class IntegrationResponse:
    status_code: str
    selection_pattern: str | None
    response_parameters: dict[str, str]
    response_templates: dict[str, str]


@dataclass(frozen=True)
class Integration:
    type: str  # AWS_PROXY, MOCK, AWS, HTTP, HTTP_PROXY
    uri: str | None
    timeout_ms: int
    request_templates: dict[str, str]
    responses: tuple[IntegrationResponse, ...]


@dataclass(frozen=True)
class Method:
    http_method: str
    authorization_type: str
    integration: Integration | None


@dataclass(frozen=True)
class Resource:
    id: str
    path: str  # the template, e.g. "/items/{proxy+}"
    methods: dict[str, Method]

    @property
    def segments(self) -> list[str]:
        return [part for part in self.path.split("/") if part]


@dataclass(frozen=True)
class Route:
    """A request's resource and method, with its path parameters (None when the resource has none)."""

    resource: Resource
    method: Method
    path_parameters: dict[str, str] | None


@dataclass(frozen=True)
class Deployment:
    id: str
    resources: tuple[Resource, ...]

    @classmethod
    def snapshot(cls, rest_api: Any, deployment_id: str) -> Deployment:
        """Copy the API's resources, methods and integrations out of moto's RestAPI."""
        return cls(
            deployment_id,
            tuple(
                Resource(
                    resource.id,
                    resource.get_path(),
                    {verb: _method(method) for verb, method in resource.resource_methods.items()},
                )
                for resource in rest_api.resources.values()
            ),
        )

    def route(self, http_method: str, raw_path: str) -> Route | None:
        """The most specific resource with a method for ``http_method``; ``raw_path`` is as sent."""
        segments = [] if raw_path.strip("/") == "" else raw_path.rstrip("/").split("/")[1:]
        candidates = []
        for resource in self.resources:
            matched = _match(resource.segments, segments)
            if matched is None:
                continue
            rank, parameters = matched
            method = resource.methods.get(http_method) or resource.methods.get("ANY")
            if method is not None:
                candidates.append((rank, resource, method, parameters))
        if not candidates:
            return None
        _, resource, method, parameters = min(candidates, key=lambda candidate: candidate[0])
        return Route(resource, method, parameters or None)


def _match(template: list[str], segments: list[str]) -> tuple[tuple[int, ...], dict[str, str]] | None:
    """(rank, path parameters) if the template matches; values stay as sent (not URL-decoded)."""
    rank: list[int] = []
    parameters: dict[str, str] = {}
    for index, part in enumerate(template):
        if part.startswith("{") and part.endswith("+}"):
            rest = "/".join(segments[index:])
            if not rest:
                return None
            parameters[part[1:-2]] = rest
            return (*rank, _GREEDY), parameters
        if index >= len(segments):
            return None
        segment = segments[index]
        if part.startswith("{") and part.endswith("}"):
            if not segment:
                return None
            parameters[part[1:-1]] = segment
            rank.append(_PARAMETER)
        elif unquote(segment) == part:
            rank.append(_LITERAL)
        else:
            return None
    if len(segments) != len(template):
        return None
    return tuple(rank), parameters


def _method(method: Any) -> Method:
    integration = method.method_integration
    return Method(
        method.http_method,
        method.authorization_type or "NONE",
        None if integration is None else _integration(integration),
    )


def _integration(integration: Any) -> Integration:
    return Integration(
        integration.integration_type,
        integration.uri,
        int(integration.timeout_in_millis or DEFAULT_TIMEOUT_MS),
        dict(integration.request_templates or {}),
        tuple(
            IntegrationResponse(
                str(response.status_code),
                response.selection_pattern or None,
                dict(response.response_parameters or {}),
                dict(response.response_templates or {}),
            )
            for response in (integration.integration_responses or {}).values()
        ),
    )
