"""API Gateway's Lambda proxy mapping and resource matching on their own, against the recorded
behaviour (shared/spec/lambda-apigateway-sigv4.md, sections 1 and 2). test_apigateway.py checks
the same through a real REST API and function."""

from __future__ import annotations

import base64
import json

import pytest

from emulation.apigateway import proxy
from emulation.apigateway.routing import Deployment, Method, Resource, Route

ROOT = Resource("r0", "/", {"POST": Method("POST", "NONE", None)})
ITEMS = Resource("r1", "/items", {"GET": Method("GET", "NONE", None)})
ITEM = Resource("r2", "/items/{id}", {"ANY": Method("ANY", "NONE", None)})
SPECIAL = Resource("r3", "/items/special", {"GET": Method("GET", "NONE", None)})
GREEDY = Resource("r4", "/files/{proxy+}", {"ANY": Method("ANY", "NONE", None)})
DEPLOYMENT = Deployment("d1", (ROOT, ITEMS, ITEM, SPECIAL, GREEDY))
API = proxy.ApiContext("123456789012", "abc123", "prod", "d1", {}, ())


def request(path="/items", *, method="GET", query="", headers=(), body=b"") -> proxy.IncomingRequest:
    return proxy.IncomingRequest(
        http_method=method,
        path=path,
        query_string=query,
        headers=[("Host", "abc123.execute-api.localhost"), ("User-Agent", "ua/1"), *headers],
        body=body,
        source_ip="127.0.0.1",
        protocol="HTTP/1.1",
        request_id="req-1",
        extended_request_id="ext-1",
        epoch_ms=1583349317000,  # 2020-03-04 19:15:17 UTC
    )


# -- routing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "resource", "parameters"),
    [
        ("GET", "/items", "/items", None),
        ("GET", "/items/", "/items", None),  # a trailing slash is ignored
        ("GET", "/items/7", "/items/{id}", {"id": "7"}),
        ("DELETE", "/items/a%2Fb", "/items/{id}", {"id": "a%2Fb"}),  # not decoded
        ("GET", "/items/special", "/items/special", None),  # a literal beats {id}
        ("POST", "/items/special", "/items/{id}", {"id": "special"}),  # ...unless it lacks the method
        ("PUT", "/files/a/b//c", "/files/{proxy+}", {"proxy": "a/b//c"}),
        ("POST", "/", "/", None),
        ("POST", "", "/", None),
    ],
)
def test_the_most_specific_resource_with_the_method_wins(method, path, resource, parameters):
    route = DEPLOYMENT.route(method, path)
    assert (route.resource.path, route.path_parameters) == (resource, parameters)
    assert route.method.http_method in (method, "ANY")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/items"), ("GET", "/nothing"), ("GET", "/files"), ("GET", "/files/"), ("GET", "/items/1/2"),
     ("GET", "/")],
)  # fmt: skip
def test_no_route(method, path):
    assert DEPLOYMENT.route(method, path) is None


def test_a_literal_segment_matches_its_encoded_form():
    assert DEPLOYMENT.route("GET", "/%69tems").resource.path == "/items"


def test_a_resource_segments():
    assert GREEDY.segments == ["files", "{proxy+}"]
    assert ROOT.segments == []


# -- the event ------------------------------------------------------------------------------------


def test_event_for_a_simple_get():
    incoming = request("/items/", query="a=1&b=x+y&a=2&empty=", headers=[("X-Multi", "1"), ("x-multi", "2")])
    event = proxy.build_event(incoming, DEPLOYMENT.route("GET", "/items/"), API)
    assert list(event) == [
        "resource", "path", "httpMethod", "headers", "multiValueHeaders", "queryStringParameters",
        "multiValueQueryStringParameters", "pathParameters", "stageVariables", "requestContext", "body",
        "isBase64Encoded",
    ]  # fmt: skip
    assert event["resource"] == "/items" and event["path"] == "/items/" and event["httpMethod"] == "GET"
    assert event["queryStringParameters"] == {"a": "2", "b": "x y", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"], "empty": [""]}
    assert event["headers"]["X-Multi"] == "1" and event["headers"]["x-multi"] == "2"
    assert event["multiValueHeaders"]["Host"] == ["abc123.execute-api.localhost"]
    assert event["pathParameters"] is None and event["stageVariables"] is None
    assert event["body"] is None and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context == {
        "resourceId": "r1",
        "resourcePath": "/items",
        "httpMethod": "GET",
        "extendedRequestId": "ext-1",
        "requestTime": "04/Mar/2020:19:15:17 +0000",
        "path": "/prod/items/",
        "accountId": "123456789012",
        "protocol": "HTTP/1.1",
        "stage": "prod",
        "domainPrefix": "abc123",
        "requestTimeEpoch": 1583349317000,
        "requestId": "req-1",
        "identity": {
            "accessKey": None,
            "accountId": None,
            "caller": None,
            "cognitoAuthenticationProvider": None,
            "cognitoAuthenticationType": None,
            "cognitoIdentityId": None,
            "cognitoIdentityPoolId": None,
            "principalOrgId": None,
            "sourceIp": "127.0.0.1",
            "user": None,
            "userAgent": "ua/1",
            "userArn": None,
        },
        "domainName": "abc123.execute-api.localhost",
        "deploymentId": "d1",
        "apiId": "abc123",
    }


def test_event_drops_length_connection_and_sigv4_authorization_but_keeps_other_authorization():
    dropped = [("Content-Length", "2"), ("Connection", "keep-alive"), ("Authorization", "AWS4-HMAC-SHA256 x")]
    event = proxy.build_event(request(headers=dropped), DEPLOYMENT.route("GET", "/items"), API)
    assert set(event["headers"]) == {"Host", "User-Agent"}
    kept = proxy.build_event(
        request(headers=[("Authorization", "Bearer t")]), DEPLOYMENT.route("GET", "/items"), API
    )
    assert kept["headers"]["Authorization"] == "Bearer t"


def test_no_headers_at_all_is_null():
    bare = proxy.IncomingRequest("GET", "/items", "", [], b"", "1.2.3.4", "HTTP/1.1", "r", "e", 0)
    event = proxy.build_event(bare, DEPLOYMENT.route("GET", "/items"), API)
    assert event["headers"] is None and event["multiValueHeaders"] is None
    assert (
        event["requestContext"]["domainName"] == ""
        and event["requestContext"]["identity"]["userAgent"] is None
    )
    assert event["requestContext"]["requestTime"] == "01/Jan/1970:00:00:00 +0000"


def test_event_body_text_or_base64_by_binary_media_types():
    api = proxy.ApiContext("1", "a", "prod", "d", {"v": "1"}, ("image/*", "application/octet-stream"))
    route = DEPLOYMENT.route("POST", "/")
    text = proxy.build_event(request("/", method="POST", body="héllo".encode()), route, api)
    assert (text["body"], text["isBase64Encoded"], text["stageVariables"]) == ("héllo", False, {"v": "1"})
    image = request("/", method="POST", headers=[("Content-Type", "image/png")], body=b"\x89PNG")
    binary = proxy.build_event(image, route, api)
    assert (binary["body"], binary["isBase64Encoded"]) == (base64.b64encode(b"\x89PNG").decode(), True)


@pytest.mark.parametrize(
    ("media_type", "types", "binary"),
    [
        ("image/png", ("image/*",), True),
        ("IMAGE/PNG; q=1", ("image/png",), True),
        ("text/plain, application/octet-stream", ("application/octet-stream",), True),
        ("text/plain", ("*/*",), True),
        ("text/plain", ("image/*",), False),
        ("imagery/png", ("image/*",), False),
        (None, ("*/*",), False),
        ("image/png", (), False),
    ],
)
def test_is_binary(media_type, types, binary):
    assert proxy.is_binary(media_type, types) is binary


# -- the response ---------------------------------------------------------------------------------


def mapped(result, binary_accepted=False):
    payload = result if isinstance(result, bytes) else json.dumps(result).encode()
    return proxy.map_response(payload, binary_accepted=binary_accepted)


def test_an_empty_object_is_200_with_json_content_type_and_no_body():
    assert mapped({}) == (200, [("Content-Type", "application/json")], b"")


def test_status_headers_and_body():
    status, headers, body = mapped(
        {"statusCode": "201", "headers": {"Content-Type": "text/plain", "X-On": True, "X-Off": False, "X-N": 3,
                                          "X-None": None}, "body": "made"}
    )  # fmt: skip
    assert (status, body) == (201, b"made")
    assert headers == [("Content-Type", "text/plain"), ("X-On", "true"), ("X-Off", "false"), ("X-N", "3")]


def test_multi_value_headers_merge_with_single_ones_and_owned_headers_are_renamed():
    _, headers, _ = mapped(
        {
            "headers": {"x-tag": "single", "Date": "yesterday", "content-type": "text/html"},
            "multiValueHeaders": {"X-Tag": ["a", "b"], "Set-Cookie": ["c=1", "d=2"], "Server": ["mine"]},
        }
    )
    assert headers == [
        ("X-Tag", "a, b, single"),
        ("Set-Cookie", "c=1"),
        ("Set-Cookie", "d=2"),
        ("x-amzn-Remapped-Server", "mine"),
        ("x-amzn-Remapped-Date", "yesterday"),
        ("content-type", "text/html"),
    ]


def test_base64_body_is_decoded_only_when_binary_is_accepted():
    encoded = base64.b64encode(b"\x00\x01").decode()
    assert mapped({"body": encoded, "isBase64Encoded": True}, binary_accepted=True)[2] == b"\x00\x01"
    assert mapped({"body": encoded, "isBase64Encoded": True})[2] == encoded.encode()
    assert mapped({"body": encoded, "isBase64Encoded": False}, binary_accepted=True)[2] == encoded.encode()


@pytest.mark.parametrize(
    "result",
    [
        b"not json",
        "justAString",
        ["a list"],
        {"statusCode": 200, "extra": 1},
        {"statusCode": "abc"},
        {"statusCode": True},
        {"statusCode": 2.5},
        {"statusCode": 99},
        {"statusCode": 600},
        {"body": {"an": "object"}},
        {"body": 5},
        {"headers": ["x"]},
        {"multiValueHeaders": "x"},
        {"multiValueHeaders": {"X": "not a list"}},
        {"headers": {"X": {"nested": 1}}},
        {"multiValueHeaders": {"X": [None]}},
        {"body": "!!", "isBase64Encoded": True},
    ],
)
def test_malformed_results_are_refused(result):
    with pytest.raises(proxy.MalformedResponse):
        mapped(result, binary_accepted=True)


def test_status_code_range_edges_and_numeric_strings():
    assert [mapped({"statusCode": code})[0] for code in (100, 599, "404", None)] == [100, 599, 404, 200]


def test_route_dataclass_holds_what_matched():
    route = DEPLOYMENT.route("GET", "/items/9")
    assert route == Route(ITEM, ITEM.methods["ANY"], {"id": "9"})


def test_a_deployment_copies_resources_methods_and_integrations_out_of_the_live_api():
    """What a stage serves is a snapshot of the API as moto holds it (built here with moto's own
    API Gateway backend): later edits to the live API do not reach it."""
    from moto.apigateway.models import apigateway_backends

    backend = apigateway_backends["210000000001"]["eu-west-1"]  # an account of its own
    api = backend.create_rest_api("snapshot-test", "")
    root = api.default.id
    items = backend.create_resource(api.id, root, "items")
    proxy_resource = backend.create_resource(api.id, items.id, "{proxy+}")
    function = "arn:aws:lambda:eu-west-1:123456789012:function:f"
    uri = f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{function}/invocations"
    backend.put_method(api.id, proxy_resource.id, "ANY", "AWS_IAM")
    backend.put_integration(
        api.id, proxy_resource.id, "ANY", "AWS_PROXY", uri, "POST", timeout_in_millis="5000"
    )
    backend.put_method(api.id, items.id, "GET", None)
    backend.put_integration(
        api.id,
        items.id,
        "GET",
        "MOCK",
        None,
        None,
        request_templates={"application/json": '{"statusCode": 200}'},
    )
    backend.put_integration_response(
        api.id,
        items.id,
        "GET",
        "200",
        "",
        {"application/json": '{"ok": true}'},
        {"method.response.header.X": "'y'"},
    )
    backend.put_integration_response(api.id, items.id, "GET", "404", "Not.*", {}, {})
    backend.put_method(api.id, root, "POST", "NONE")  # a method without an integration

    deployment = Deployment.snapshot(api, "dep-1")
    backend.put_integration(
        api.id, items.id, "GET", "HTTP", "http://example.com", "GET"
    )  # after the snapshot

    assert deployment.id == "dep-1"
    by_path = {resource.path: resource for resource in deployment.resources}
    assert set(by_path) == {"/", "/items", "/items/{proxy+}"}
    assert by_path["/items/{proxy+}"].id == proxy_resource.id
    assert by_path["/"].methods == {"POST": Method("POST", "NONE", None)}
    greedy = deployment.route("DELETE", "/items/a/b")
    assert greedy.path_parameters == {"proxy": "a/b"}
    assert greedy.method.http_method == "ANY" and greedy.method.authorization_type == "AWS_IAM"
    integration = greedy.method.integration
    assert (integration.type, integration.uri, integration.timeout_ms, integration.request_templates) == (
        "AWS_PROXY", uri, 5000, {},
    )  # fmt: skip
    mock = deployment.route("GET", "/items").method
    assert mock.authorization_type == "NONE"  # none given: AWS reports NONE
    assert mock.integration.type == "MOCK" and mock.integration.timeout_ms == 29000
    assert mock.integration.request_templates == {"application/json": '{"statusCode": 200}'}
    responses = {response.status_code: response for response in mock.integration.responses}
    assert set(responses) == {"200", "404"}
    assert responses["200"].selection_pattern is None  # an empty pattern is the default response
    assert responses["200"].response_templates == {"application/json": '{"ok": true}'}
    assert responses["200"].response_parameters == {"method.response.header.X": "'y'"}
    assert (responses["404"].selection_pattern, responses["404"].response_templates) == ("Not.*", {})
