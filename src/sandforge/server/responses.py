"""What the routes answer, as documentation: response shapes for the OpenAPI document.

The views build these shapes as dicts (server/views.py); the fuzz test
(tests/server/test_openapi.py) checks every answer against them, so they cannot drift.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ..chat import ChatMessage
from ..events import ServicePreview
from ..ids import Kind
from ..projects.serving import PreviewState
from ..sandbox import SandboxState
from ..store.records import Flow, RunState


class RunStarted(BaseModel):
    """A run was accepted and has started; follow it at `/api/runs/{runId}/events`."""

    runId: str
    kind: Literal["run"]
    projectId: str


# Not runs/request.py's PickedElement: FastAPI documents an answer in serialization mode,
# the request's component is in validation mode, and one name cannot hold both schemas.
class PointedElement(BaseModel):
    """An element of the preview a prompt pointed at (the request's `elements`)."""

    selector: str
    tag: str
    text: str
    file: str | None = None
    line: int | None = None


class Run(BaseModel):
    runId: str
    kind: Literal["run"]
    projectId: str
    state: RunState
    sandboxId: str | None
    createdAt: float
    finishedAt: float | None
    events: int
    tokensUsed: int
    projectType: str | None
    prompt: str
    images: int
    """How many images the prompt came with (GET /api/runs/{run_id}/images/{index})."""
    elements: list[PointedElement]
    """The elements of the preview the user pointed at for this prompt."""


class Runs(BaseModel):
    runs: list[Run]


class Project(BaseModel):
    id: str
    kind: Literal["project"]
    name: str
    projectType: str
    flow: Flow
    agents: list[str]
    provider: str
    sandboxId: str | None
    public: bool
    previewUrl: str
    services: list[ServicePreview]
    """Every service of the project type with its own preview URL; the main one first."""
    accessToken: str | None
    """None for a public project."""
    model: str | None
    """The model chosen for the project's runs; null: the server's configured one."""
    createdAt: float
    updatedAt: float


class Projects(BaseModel):
    projects: list[Project]


class ProjectWithConversation(Project):
    messages: list[ChatMessage]


class Sandbox(BaseModel):
    id: str
    kind: Literal["sandbox"]
    provider: str
    state: SandboxState
    labels: dict[str, str]
    projectId: str | None
    public: bool
    createdAt: float
    ageSeconds: float
    previewUrl: str


class Sandboxes(BaseModel):
    sandboxes: list[Sandbox]


class Session(BaseModel):
    """Everything the UI needs to reopen a project."""

    id: str
    kind: Kind
    project: ProjectWithConversation
    runs: list[Run]
    sandbox: Sandbox | None
    sandboxGone: bool


class Preview(BaseModel):
    status: PreviewState
    url: str
    logTail: str
    sandboxId: str | None
    render: dict[str, Any] | None
    """The rendered check of the last successful run, if it had one."""
    exitCode: int | None = None
    """Set when the dev server has exited."""
    sandboxGone: bool | None = None
    """Set when the project's sandbox no longer exists (opening the preview rebuilds it)."""


class FileEntry(BaseModel):
    path: str
    size: int
    isDir: bool


class Files(BaseModel):
    files: list[FileEntry]


class Version(BaseModel):
    number: int
    kind: Literal["run", "edit", "restore"]
    """What made it: a run, a manual edit, or a restore of an older version."""
    message: str
    runId: str | None
    commit: str | None
    files: int
    createdAt: float


class Versions(BaseModel):
    versions: list[Version]


class FileChange(BaseModel):
    path: str
    status: Literal["added", "deleted", "modified"]
    added: int
    """Lines added (0 for a file that is not text)."""
    removed: int


class TimelineEntry(BaseModel):
    number: int
    kind: Literal["run", "edit", "restore"]
    message: str
    prompt: str | None
    """The prompt of the run that made it; null for an edit or a restore."""
    runId: str | None
    screenshot: str | None
    """The rendered check's screenshot of the run that made it, if there is one."""
    createdAt: float
    files: int
    changes: list[FileChange]
    """Against the version before it."""


class Timeline(BaseModel):
    versions: list[TimelineEntry]
    """Oldest first."""


class ModelOption(BaseModel):
    name: str
    """A model string, e.g. `anthropic:claude-sonnet-4-5`."""
    default: bool
    """The server's configured model (SANDFORGE_MODEL), used unless a project chooses another."""
    readsImages: bool
    """Whether prompts with images can go to it."""
    problem: str | None
    """Why it cannot run on this server (a missing key...), and the fix; null when it can."""


class Models(BaseModel):
    models: list[ModelOption]
    patterns: list[str]
    """Glob patterns SANDFORGE_ALLOWED_MODELS also allows (`openai:*`): any model they match."""


class Saved(BaseModel):
    """The version a manual edit saved."""

    number: int
    kind: Literal["edit"]
    message: str
    commit: str | None


class Restored(BaseModel):
    """The new version, holding the restored files."""

    number: int
    message: str
    commit: str | None


class FileDiff(BaseModel):
    path: str
    status: Literal["added", "deleted", "modified"]
    diff: str
    """Unified diff."""


class Diff(BaseModel):
    from_: int = Field(alias="from")
    to: int
    files: list[FileDiff]


class Share(BaseModel):
    id: str
    kind: Literal["share"]
    url: str
    """The preview's URL with this link's token: what to send to people."""
    createdAt: float
    expiresAt: float | None
    revokedAt: float | None
    live: bool


class Shares(BaseModel):
    shares: list[Share]


class DatabaseHealth(BaseModel):
    ok: bool
    dialect: str
    """`sqlite` or `postgresql`."""


class RedisHealth(BaseModel):
    configured: bool
    """False when the server runs alone (no SANDFORGE_REDIS_URL)."""
    ok: bool


class ProviderHealth(BaseModel):
    name: str
    """The default sandbox provider (SANDFORGE_SANDBOX)."""
    isolated: bool
    """Local sandboxes run with full isolation here."""


class ReplicaLoad(BaseModel):
    id: str
    running: int
    """Runs in flight on this replica."""
    capacity: int
    """SANDFORGE_MAX_CONCURRENT_RUNS: runs this replica takes at once."""
    draining: bool
    """It takes no new runs and finishes those it has."""


class Health(BaseModel):
    ok: bool
    """The database (and Redis, when configured) answer."""
    isolated: bool
    model: str
    database: DatabaseHealth | None = None
    redis: RedisHealth | None = None
    sandboxProvider: ProviderHealth | None = None
    replica: ReplicaLoad | None = None


class ReplicaInfo(BaseModel):
    id: str
    kind: Literal["replica"]
    address: str
    """Where the other replicas reach it."""
    startedAt: float
    heartbeatAt: float
    draining: bool
    capacity: int
    running: int
    runs: list[str]
    """The ids of the runs it is running."""
    sandboxes: list[str]
    """The ids of its local sandboxes (their previews are served by it)."""
    self_: bool = Field(alias="self")
    """It is the replica that answered."""


class Replicas(BaseModel):
    replicas: list[ReplicaInfo]
    queued: int
    """Runs waiting for a replica with room."""
