"""The OpenAPI document is true, and a fuzzer holds the server to it.

schemathesis (a property-based API fuzzer, from PyPI) runs over every operation of a real
server's /openapi.json: examples, boundary and missing values (coverage), random valid and
invalid input (fuzzing), then sequences that follow the document's links (stateful). Any
5xx, undocumented status or content type, or answer that violates its schema fails it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from sandforge.runs.request import GenerationRequest
from sandforge.templates import TEMPLATES
from tests.conftest import LiveServer

ERROR_REF = {"$ref": "#/components/schemas/Error"}
GENERATION_PATHS = ("/api/agent/stream-daytona", "/api/agent/stream", "/api/runs")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

FUZZ_EXAMPLES = 10
"""Per operation and phase; the run takes about two minutes on two busy cores."""
HANG_SECONDS = 540
"""Far past any normal run: only a fuzzer stuck on a request that never ends reaches it."""

FUZZ_CONFIG = """
max-failures = 20

[generation]
max-examples = {max_examples}
deterministic = true
database = "none"

[phases.stateful]
max-steps = 40

[[operations]]
# A project's live feed never ends: read it for a moment, then move on.
include-operation-id = "project_events"
request-timeout = 1

[[operations]]
# Every valid body starts a run in a new sandbox, the slow part of this test. The body's
# valid boundary cases are covered once, on the persistent flow (one model for all three).
include-operation-id-regex = "^(stream_daytona|create_run)$"
phases.coverage.generation.mode = "negative"

[[operations]]
# Whether and where a project is published: once unpublished (DELETE), a 200 with `site:
# null` by design, the state of a publication rather than a deleted resource still served.
include-operation-id = "get_published"
checks.use_after_free.enabled = false

[[operations]]
# Draining (this server, whose id GET /api/replicas gives) refuses every later run with a
# 503 by design; tests/replicas/test_pair.py holds it to its document instead.
include-operation-id = "drain_replica"
enabled = false
"""


async def openapi(server: LiveServer) -> dict[str, Any]:
    response = await server.client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def schema_pointers(document: dict[str, Any]) -> Iterator[str]:
    """A JSON pointer to every Schema Object in the document."""

    def escape(key: str) -> str:
        return quote(key.replace("~", "~0").replace("/", "~1"), safe="")

    for name in document.get("components", {}).get("schemas", {}):
        yield f"#/components/schemas/{escape(name)}"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            at = f"#/paths/{escape(path)}/{method}"
            for i, _ in enumerate(operation.get("parameters", [])):
                yield f"{at}/parameters/{i}/schema"
            for media, _ in operation.get("requestBody", {}).get("content", {}).items():
                yield f"{at}/requestBody/content/{escape(media)}/schema"
            for status, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    for key in ("schema", "itemSchema"):
                        if key in content:
                            yield f"{at}/responses/{status}/content/{escape(media)}/{key}"
                for header in response.get("headers", {}):
                    yield f"{at}/responses/{status}/headers/{escape(header)}/schema"


async def test_the_document_is_valid_openapi_3_1(server: LiveServer) -> None:
    document = await openapi(server)
    assert document["openapi"].startswith("3.1")
    OPENAPI_31_VALIDATOR.validate(document)
    for pointer in schema_pointers(document):
        # Compiled from the document's root, so each `$ref` must resolve within it.
        jsonschema_rs.Draft202012Validator({**document, "$ref": pointer})


async def test_bad_input_is_documented_as_the_400_it_is_and_failures_as_errors(
    server: LiveServer,
) -> None:
    document = await openapi(server)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, operation in operations(document):
        responses = operation["responses"]
        where = f"{method} {path}"
        assert "422" not in responses, where
        assert "500" in responses, where
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"] == {"application/json": {"schema": ERROR_REF}}, where
        if "requestBody" in operation:
            assert "400" in responses, where
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]


async def test_the_generation_bodies_are_documented_whole(server: LiveServer) -> None:
    document = await openapi(server)
    for path in GENERATION_PATHS:
        operation = document["paths"][path]["post"]
        body = operation["requestBody"]
        assert body["required"] is True
        assert body["content"] == {
            "application/json": {"schema": {"$ref": "#/components/schemas/GenerationRequest"}}
        }
        assert {"400", "413", "415"} <= set(operation["responses"]), path
    schema = document["components"]["schemas"]["GenerationRequest"]
    assert set(schema["properties"]) == set(GenerationRequest.model_fields)
    assert schema["required"] == ["messages"]
    assert schema["properties"]["projectType"]["enum"] == sorted(TEMPLATES)
    assert "ChatMessage" in document["components"]["schemas"]


async def test_a_405_names_every_method_the_path_has(server: LiveServer) -> None:
    for method, path, allowed in (
        ("PUT", "/api/runs", {"GET", "POST"}),
        ("OPTIONS", "/api/runs", {"GET", "POST"}),
        ("POST", "/api/projects/pj000000000000", {"GET", "PATCH", "DELETE"}),
        ("DELETE", "/api/health", {"GET"}),
    ):
        response = await server.client.request(method, path)
        assert response.status_code == 405, (method, path)
        assert {m.strip() for m in response.headers["allow"].split(",")} == allowed, path
        assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.timeout(HANG_SECONDS + 60)
async def test_schemathesis_finds_nothing_wrong(server: LiveServer, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(FUZZ_CONFIG.format(max_examples=FUZZ_EXAMPLES))
    # A separate process: the fuzzer's requests are blocking, and the server runs on this loop.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        str(server.client.base_url.join("/openapi.json")),
        "--checks",
        "all",
        # Valid by the schema is not valid by every rule (a prompt of only spaces, a model
        # this server does not allow): those are 400s, rightly, so this check is off.
        "--exclude-checks",
        "positive_data_acceptance",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), HANG_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"schemathesis hung: no result after {HANG_SECONDS} s")
    report = output.decode(errors="replace")
    assert process.returncode == 0, report
