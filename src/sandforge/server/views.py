"""The JSON shapes the API answers with; every id goes out with its `kind` beside it."""

from __future__ import annotations

import time
from typing import Any

from ..chat import ChatMessage
from ..config import Settings
from ..projects.service import Session
from ..projects.serving import PreviewStatus, service_previews
from ..sandbox import SandboxInfo
from ..store.records import ProjectRecord, RunRecord, VersionRecord
from ..templates import WEB_APP, get_template


def project_json(project: ProjectRecord, settings: Settings) -> dict[str, Any]:
    return {
        "id": project.id,
        "kind": "project",
        "name": project.name,
        "projectType": project.project_type,
        "flow": project.flow,
        "agents": project.agents,
        "provider": project.provider,
        "sandboxId": project.sandbox_id,
        "public": project.public,
        "previewUrl": settings.preview_url(project.id, get_template(project.project_type).port),
        "services": [
            s.model_dump()
            for s in service_previews(get_template(project.project_type), settings, project.id)
        ],
        "accessToken": None if project.public else project.preview_token,
        "createdAt": project.created_at,
        "updatedAt": project.updated_at,
    }


def conversation_json(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    return [m.model_dump() for m in messages]


def run_json(record: RunRecord) -> dict[str, Any]:
    return {
        "runId": record.id,
        "kind": "run",
        "projectId": record.project_id,
        "state": record.state,
        "sandboxId": record.sandbox_id,
        "createdAt": record.created_at,
        "finishedAt": record.finished_at,
        "events": record.events,
        "tokensUsed": record.tokens_used,
        "projectType": record.project_type,
        "prompt": record.prompt,
    }


def sandbox_json(info: SandboxInfo, settings: Settings, port: int = WEB_APP.port) -> dict[str, Any]:
    return {
        "id": info.id,
        "kind": "sandbox",
        "provider": info.provider,
        "state": info.state.value,
        "labels": info.labels,
        "projectId": info.labels.get("project"),
        "public": info.public,
        "createdAt": info.created_at,
        "ageSeconds": round(time.time() - info.created_at, 1),
        "previewUrl": settings.preview_url(info.id, port),
    }


def version_json(version: VersionRecord) -> dict[str, Any]:
    return {
        "number": version.number,
        "message": version.message,
        "runId": version.run_id,
        "commit": version.commit,
        "files": version.files,
        "createdAt": version.created_at,
    }


def preview_json(
    status: PreviewStatus, url: str, sandbox_id: str | None, render: dict[str, Any] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": status.state,
        "url": url,
        "logTail": status.log_tail,
        "sandboxId": sandbox_id,
        "render": render,
    }
    if status.exit_code is not None:
        body["exitCode"] = status.exit_code
    return body


def session_json(session: Session, any_id: str, settings: Settings) -> dict[str, Any]:
    return {
        "id": any_id,
        "kind": session.kind,
        "project": {
            **project_json(session.project, settings),
            "messages": conversation_json(session.messages),
        },
        "runs": [run_json(r) for r in session.runs],
        "sandbox": sandbox_json(session.sandbox, settings) if session.sandbox else None,
        "sandboxGone": session.sandbox_gone,
    }
