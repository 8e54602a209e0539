"""API Gateway's execute-api data plane for REST APIs: Lambda proxy and MOCK integrations."""

from emulation.apigateway.execute_api import (
    RAW_HEADERS_ENVIRON_KEY,
    ExecuteApi,
    execute_api_url,
    is_execute_api_request,
)

__all__ = ["RAW_HEADERS_ENVIRON_KEY", "ExecuteApi", "execute_api_url", "is_execute_api_request"]
