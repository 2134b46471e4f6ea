"""The OpenAPI document, made true: each operation's real statuses, in the shapes it answers.

FastAPI documents a 422 in its own shape for every operation with parameters, but our
handler answers bad input with a 400 `Error` (server/errors.py): those 422s are dropped,
and each route lists what it can answer with `errors(...)`. Bodies that handlers read
themselves (`read_json_model`, for the 413 and 415 checks) are invisible to FastAPI, so
their schemas are added here as components, with the shared `Error` and the event stream.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from ..events import event_adapter
from ..projects.github import GitHubPush
from ..projects.settings import SettingsUpdate
from ..runs.request import GenerationRequest
from .bodies import FileEdit, ProjectUpdate, ShareRequest, SignIn

COMPONENTS = "#/components/schemas/"

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "description": "The body of every API failure.",
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable and machine-readable, e.g. `run_not_found`.",
                },
                "message": {
                    "type": "string",
                    "description": "What happened and what to do about it.",
                },
            },
        }
    },
}

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Bad input: a parameter or the body is invalid; `message` says what to change.",
    401: "Authentication is on and the request carries no valid token or sign-in.",
    403: "A change asked for by another origin (a preview, another site): refused.",
    404: "Something the request names does not exist (any more).",
    409: "Not now: a run is still changing the project, or the sandbox is not in a state "
    "to do this.",
    413: "The body, or the file, is larger than the server allows.",
    415: "The body is not sent as `application/json`.",
    429: "Too many sandboxes are running (SANDFORGE_MAX_SANDBOXES).",
    500: "The server failed unexpectedly; its log has the details.",
    502: "A service sandforge relies on (GitHub's API) failed or did not answer.",
    503: "Not now: the server is shutting down or draining (it starts no new runs here), "
    "or its database is away. Try again shortly, or another replica.",
    507: "A disk is full: the server's data dir, or the sandbox's own disk.",
}

_SCHEMAS: dict[str, tuple[TypeAdapter[Any], JsonSchemaMode]] = {
    "GenerationRequest": (TypeAdapter(GenerationRequest), "validation"),
    "Event": (event_adapter, "serialization"),
    "ShareRequest": (TypeAdapter(ShareRequest), "validation"),
    "SignIn": (TypeAdapter(SignIn), "validation"),
    "FileEdit": (TypeAdapter(FileEdit), "validation"),
    "ProjectUpdate": (TypeAdapter(ProjectUpdate), "validation"),
    "SettingsUpdate": (TypeAdapter(SettingsUpdate), "validation"),
    "GitHubPush": (TypeAdapter(GitHubPush), "validation"),
}
"""Schemas the routes refer to that FastAPI does not generate, by component name."""


def operation_id(route: APIRoute) -> str:
    """The handler's name (`get_run`): stable ids that links and clients can name."""
    return route.name


def ref(name: str) -> dict[str, str]:
    return {"$ref": COMPONENTS + name}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses` for these error statuses, and the 500 and 503 (the database away, the server
    stopping) that any operation can answer."""
    return {
        status: {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": ref("Error")}},
        }
        for status in sorted({*statuses, 500, 503})
    }


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a JSON body the handler reads itself (a component of that name)."""
    assert model.__name__ in _SCHEMAS, f"add {model.__name__} to openapi._SCHEMAS"
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ref(model.__name__)}},
        }
    }


def event_stream(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A 200 `text/event-stream` of `id: <seq>` / `data: <Event JSON>` frames.

    The schema describes one event (OpenAPI 3.1 has no `itemSchema`; tools read an event
    stream's `schema` per event, as 3.2 reads `itemSchema`).
    """
    item = {
        "type": "object",
        "required": ["id", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": ref("Event"),
            },
        },
    }
    response: dict[str, Any] = {
        "description": description,
        "content": {"text/event-stream": {"schema": item}},
    }
    if headers:
        response["headers"] = {
            name: {"description": text, "required": True, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response


def link(operation_id: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to `operation_id`; parameter values are runtime expressions
    (`$response.body#/runId`) or constants."""
    return {"operationId": operation_id, "parameters": parameters}


def run_links(run_id: str, project_id: str) -> dict[str, Any]:
    """Links from a started run to itself and its project; the arguments find the ids in
    the response (its body, or its headers for a stream).

    Not linked: the screenshot (only a rendered check makes one), and deleting the project,
    which deletes its runs at other paths, so a fuzzer following links would take the
    run's 404s afterwards for runs that were never created.
    """
    return {
        "GetRun": link("get_run", run_id=run_id),
        "FollowRun": link("run_events", run_id=run_id),
        "CancelRun": link("cancel_run", run_id=run_id),
        "Session": link("get_session", any_id=run_id),
        "GetProject": link("get_project", project_id=project_id),
        "ProjectFiles": link("list_project_files", project_id=project_id),
        "ProjectVersions": link("list_versions", project_id=project_id),
        "ProjectPreview": link("project_preview", project_id=project_id),
        "RestoreFirstVersion": link("restore_version", project_id=project_id, number="1"),
        "DiffFirstVersion": link(
            "diff_versions", project_id=project_id, **{"from": "1", "to": "1"}
        ),
        "FollowUp": {"operationId": "create_run", "requestBody": {"projectId": project_id}},
    }


PROJECT_LINKS = {
    name: link(operation, sandbox_id="$response.body#/sandboxId")
    for name, operation in (
        ("GetSandbox", "get_sandbox"),
        ("SandboxPreview", "sandbox_preview"),
        ("SandboxFiles", "list_sandbox_files"),
        ("StopSandbox", "stop_sandbox"),
        ("StartSandbox", "start_sandbox"),
        ("DeleteSandbox", "delete_sandbox"),
    )
}
"""From a project to its sandbox (null for the persistent flow: a 404 then)."""


def first_file_link(operation_id: str, owner: str) -> dict[str, Any]:
    """From a file list to reading its first file; `owner` is the path parameter it shares."""
    return {
        "ReadFirstFile": link(
            operation_id,
            **{owner: f"$request.path.{owner}", "path": "$response.body#/files/0/path"},
        )
    }


def _components() -> dict[str, Any]:
    mapping, definitions = TypeAdapter.json_schemas(
        [(name, mode, adapter) for name, (adapter, mode) in _SCHEMAS.items()],
        ref_template=COMPONENTS + "{model}",
    )
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA, **definitions.get("$defs", {})}
    for (name, _mode), schema in mapping.items():
        if schema != ref(name):  # A model is its own definition already; a union is inline.
            schemas[name] = schema
    # Every event carries its `type` (the discriminator), default or not; pydantic leaves a
    # field with a default out of `required`.
    discriminator = schemas["Event"]["discriminator"]
    for target in discriminator["mapping"].values():
        member = schemas[target.removeprefix(COMPONENTS)]
        member["required"] = [discriminator["propertyName"], *member["required"]]
    return schemas


def _without_422(document: dict[str, Any]) -> None:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi
    components = _components()

    def openapi() -> dict[str, Any]:
        # FastAPI caches the document it generates; amending it again changes nothing.
        document = generate()
        _without_422(document)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in components.items():
            # A model FastAPI documents too (ChatMessage) must come out the same both ways.
            assert schemas.get(name, schema) == schema, f"two schemas named {name}"
            schemas[name] = schema
        return document

    app.openapi = openapi  # type: ignore[method-assign]
