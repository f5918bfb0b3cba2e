"""/openapi.json: a valid OpenAPI 3.1 document generated from the models the handlers write,
and a running service that answers every operation the way the document says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from dispatcher.api.app import ROUTE_MODULES
from dispatcher.api.openapi import (
    REF_TEMPLATE,
    Reply,
    Route,
    hand_written_paths,
    openapi_document,
    routes_of,
)
from dispatcher.edge import ErrorBody
from dispatcher.settings import Settings
from tests.security.conftest import TOKENS
from tests.security.test_fuzz_api import AUTH, CHECKS, ServedService, fuzz_settings
from tests.support import own_config

# Generated requests per operation: enough to reach each documented status of the common
# paths, few enough for the whole API in well under a minute.
EXAMPLES_PER_OPERATION = 3
BOB = {"Authorization": f"Bearer {TOKENS['bob'][0]}"}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document of a service with the test config, built without serving it."""
    settings = Settings.model_validate(own_config(tmp_path_factory.mktemp("document")))
    return openapi_document(settings, routes_of(ROUTE_MODULES), hand_written_paths(ROUTE_MODULES))


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


class TestDocument:
    """The document is valid OpenAPI 3.1 and its schemas are the models' own."""

    def test_valid_openapi_3_1(self, document: dict[str, Any]) -> None:
        """openapi-spec-validator accepts the document."""
        assert document["openapi"] == "3.1.0"
        validate(document)

    def test_the_validator_refuses_a_broken_document(self, document: dict[str, Any]) -> None:
        """A response without its description is refused: the check above can fail."""
        broken = json.loads(json.dumps(document))
        del broken["paths"]["/v1/lint"]["post"]["responses"]["200"]["description"]
        with pytest.raises(OpenAPIValidationError):
            validate(broken)

    def test_every_reference_resolves(self, document: dict[str, Any]) -> None:
        """Each `$ref` names a schema in components/schemas."""
        schemas = document["components"]["schemas"]
        prefix = REF_TEMPLATE.format(model="")
        refs = set(_refs(document))
        assert refs
        assert {r for r in refs if not r.startswith(prefix)} == set()
        assert {r.removeprefix(prefix) for r in refs} - set(schemas) == set()

    def test_error_schema_is_the_error_model(self, document: dict[str, Any]) -> None:
        """The error schema is generated from `ErrorBody`, the body every error response writes."""
        generated = ErrorBody.model_json_schema(ref_template=REF_TEMPLATE, mode="serialization")
        generated.pop("$defs", None)
        assert document["components"]["schemas"]["ErrorBody"] == generated

    def test_every_error_of_a_route_table_is_the_error_body(
        self, document: dict[str, Any]
    ) -> None:
        """Each 4xx and 5xx of each operation in a route table is described as `ErrorBody`
        (but the health probe's 503, which is its report: unhealthy, and why)."""
        error_body = {"$ref": REF_TEMPLATE.format(model="ErrorBody")}
        checked = 0
        for route in routes_of(ROUTE_MODULES):
            responses = document["paths"][route.path][route.method]["responses"]
            for status, response in responses.items():
                if int(status) >= 400 and (route.path, status) != ("/healthz", "503"):
                    assert response["content"] == {"application/json": {"schema": error_body}}, (
                        f"{route.method} {route.path} {status}")
                    checked += 1
        assert checked > 100

    def test_secured_operations_say_so(self, document: dict[str, Any]) -> None:
        """An operation that needs a token names the bearer scheme and may answer 401 and 429;
        a write may also answer 403 (a viewer's token only reads)."""
        for route in routes_of(ROUTE_MODULES):
            operation = document["paths"][route.path][route.method]
            if route.auth:
                assert operation["security"] == [{"bearer": []}]
                assert {"401", "429"} <= set(operation["responses"])
                if route.method != "get":
                    assert "403" in operation["responses"]
            else:
                assert "security" not in operation

    def test_path_parameters_come_from_the_path(self, document: dict[str, Any]) -> None:
        """`{id}` in a path is a required path parameter of one to 100 characters."""
        (parameter,) = document["paths"]["/v1/approvals/{id}"]["get"]["parameters"]
        assert parameter == {"name": "id", "in": "path", "required": True,
                             "schema": {"type": "string", "minLength": 1, "maxLength": 100}}

    def test_an_operation_described_twice_is_refused(self, tmp_path: Path) -> None:
        """Two routes for the same method and path are an error, not a silent overwrite."""
        settings = Settings.model_validate(own_config(tmp_path))
        route = Route("get", "/x", "x", replies={200: Reply("x")})
        with pytest.raises(ValueError, match="described twice"):
            openapi_document(settings, [route, route])


@pytest.fixture
def served(tmp_path: Path, small_people: Path) -> Iterator[ServedService]:
    """The service on a free port in a thread of its own (approval on, the small campus)."""
    server = ServedService(fuzz_settings(tmp_path, small_people))
    server.start()
    yield server
    server.stop()


class TestAgainstTheService:
    """A running service answers as its document says."""

    def test_every_operation_answers_as_documented(self, served: ServedService) -> None:
        """Generated valid requests to every operation: no 5xx, and each status, content type
        and body as documented."""
        doc = requests.get(f"{served.url}/openapi.json", timeout=10).json()
        schema = schemathesis.openapi.from_dict(doc)
        session = requests.Session()
        operations = [result.ok() for result in schema.get_all_operations()]
        seen: set[str] = set()
        assert len(operations) >= 40
        for operation in operations:
            strategy = operation.as_strategy(
                generation_mode=schemathesis.GenerationMode.POSITIVE)

            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                      derandomize=True, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def one(case: Any) -> None:
                headers = {**(case.headers or {}), **AUTH}
                response = case.call(base_url=served.url, session=session, headers=headers,
                                     timeout=10)
                seen.add(f"{case.method} {case.path}")
                case.validate_response(response, checks=CHECKS, headers=headers)

            one()
        assert len(seen) == len(operations)

    def test_replies_with_data_match_their_models(self, served: ServedService) -> None:
        """An alert held for approval, approved, then read every way: each reply with real
        data matches the document."""
        doc = requests.get(f"{served.url}/openapi.json", timeout=10).json()
        schema = schemathesis.openapi.from_dict(doc)
        session = requests.Session()

        def call(method: str, path: str, status: int, *, headers: dict[str, str] = AUTH,
                 **parts: Any) -> Any:
            operation = schema[path][method]
            case = operation.Case(headers=headers, **parts)
            response = case.call(base_url=served.url, session=session, timeout=10)
            case.validate_response(response, checks=CHECKS, headers=headers)
            assert response.status_code == status, response.text
            return response.json() if response.content else None

        alert = {"kind": "emergency", "audience": "all", "channels": ["email"],
                 "text": "Fire at Carver Hall. Evacuate now by the nearest exit.",
                 "ask": {"question": "Are you safe?"}}
        held = call("POST", "/v1/alerts", 202, body=alert, media_type="application/json")
        assert held["approval_required"] is True
        approval = {"id": held["id"]}
        call("GET", "/v1/approvals", 200)
        call("GET", "/v1/approvals/{id}", 200, path_parameters=approval)
        approved = call("POST", "/v1/approvals/{id}/approve", 202, headers=BOB,
                        path_parameters=approval)
        alert_id = {"id": approved["id"]}
        call("GET", "/v1/alerts/{id}", 200, path_parameters=alert_id)
        call("GET", "/v1/alerts/{id}/deliveries", 200, path_parameters=alert_id)
        call("GET", "/v1/alerts/{id}/responses", 200, path_parameters=alert_id)
        call("GET", "/v1/feeds/events", 200)
        # A cursor beyond the stored ids is refused, not a 500 from the database driver.
        call("GET", "/v1/feeds/events", 422, query={"before": str(2**90)})
        call("GET", "/v1/feeds/proposals", 200, query={"state": "all"})
        call("GET", "/v1/devices", 200)
        # A moment at the edge of the calendar is refused, not a 500 from date arithmetic.
        incident = {"reported_at": "9999-12-31T23:59:59-05:00", "location": "Lot C",
                    "geography": "on_campus", "nature": "Theft from a vehicle"}
        refused = call("POST", "/v1/incidents", 422, body=incident,
                       media_type="application/json")
        assert [p["field"] for p in refused["problems"]] == ["reported_at"]
        call("GET", "/healthz", 200, headers={})
        verdict = call("POST", "/v1/lint", 200, body=alert, media_type="application/json")
        assert verdict["ok"] is True
        named = {"kind": "timely_warning", "text": "Timely Warning: Michael Torres, a freshman, "
                 "was robbed near the bookstore Monday. Walk with others after dark."}
        verdicts = call("POST", "/v1/lint", 200, body=[alert, named],
                        media_type="application/json")
        assert [v["ok"] for v in verdicts] == [True, False]
        refused = call("POST", "/v1/lint", 422, body=[], media_type="application/json")
        assert ErrorBody.model_validate(refused).error
