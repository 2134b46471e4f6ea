"""What the store hands out: plain, typed records, never ORM rows.

The Literal types are the domain's own vocabularies; the store keeps them narrow,
so no caller has to narrow a `str` again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..config import SandboxProviderName

Flow = Literal["sandbox", "persistent"]
"""`sandbox`: files live in a sandbox, mirrored in the store. `persistent`: files live in
the store and are served from it, with no sandbox."""
RunState = Literal["running", "succeeded", "failed", "cancelled", "interrupted"]
SandboxLifecycle = Literal["started", "stopped", "deleted"]
VersionKind = Literal["run", "edit", "restore"]
"""What made a version: a run, the user's manual edit, or a restore of an older one."""


def narrow(value: str, vocabulary: object) -> Any:
    """`value` as a member of the Literal `vocabulary`; a stored value outside it is a bug."""
    if value not in get_args(vocabulary):
        raise ValueError(f"{value!r} is not one of {get_args(vocabulary)}")
    return value


@dataclass(frozen=True)
class ProjectRecord:
    id: str
    name: str
    project_type: str
    flow: Flow
    agents: list[str]
    provider: SandboxProviderName
    sandbox_id: str | None
    preview_token: str
    public: bool
    created_at: float
    updated_at: float
    model: str | None = None
    """The model chosen for the project's runs; None: the server's configured one."""


@dataclass(frozen=True)
class RunRecord:
    id: str
    project_id: str
    state: RunState
    request: dict[str, Any]
    """The request body as it was accepted (the seed's fields, validated)."""
    sandbox_id: str | None
    tokens_used: int
    created_at: float
    finished_at: float | None
    events: int

    @property
    def prompt(self) -> str:
        messages = self.request.get("messages") or [{}]
        return str(messages[-1].get("content", ""))

    @property
    def images(self) -> list[dict[str, Any]]:
        """The images the prompt came with: `{mediaType, data}` (base64)."""
        images = self.request.get("images")
        return [i for i in images if isinstance(i, dict)] if isinstance(images, list) else []

    @property
    def project_type(self) -> str | None:
        value = self.request.get("projectType")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class VersionRecord:
    number: int
    run_id: str | None
    message: str
    commit: str | None
    created_at: float
    files: int
    kind: VersionKind = "run"


@dataclass(frozen=True)
class ShareLinkRecord:
    id: str
    project_id: str
    token: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def live(self, at: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > at)
