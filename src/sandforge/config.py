"""Settings: the only place configuration is read (environment variables and `.env`)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from .sandbox.local.rootfs import Rootfs
    from .sandbox.system import SystemImage

SandboxProviderName = Literal["local", "daytona"]


def machine_cache_dir(name: str, otherwise: Path) -> Path:
    """A cache the whole machine shares: /var/cache/sandforge/<name> when the server is root
    (each sandbox runs as its own uid, and every data dir can use it), else `otherwise`, a
    dir of the server's own user."""
    if os.geteuid() == 0:
        return Path("/var/cache/sandforge") / name
    return otherwise


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/sandforge`, which is `~/.local/share/sandforge` on most machines."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "sandforge"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SANDFORGE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    server_url: str | None = None
    """Where the CLI's client commands (`sandforge sandboxes ...`) reach a running server, e.g.
    http://10.0.0.5:8000 (SANDFORGE_SERVER_URL); default http://<host>:<port>."""
    port: int = 8000
    preview_domain: str = "localhost"
    preview_scheme: Literal["http", "https"] = "http"

    model: str | None = None
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("ANTHROPIC_API_KEY", "SANDFORGE_ANTHROPIC_API_KEY"),
    )
    # Model providers (see docs/models.md). The SDKs' own variables work; a SANDFORGE_ one wins.
    anthropic_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "SANDFORGE_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL", "anthropic_base_url"
        ),
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "SANDFORGE_OPENAI_API_KEY", "OPENAI_API_KEY", "openai_api_key"
        ),
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "SANDFORGE_OPENAI_BASE_URL", "OPENAI_BASE_URL", "openai_base_url"
        ),
    )
    ollama_base_url: str = Field(
        default="http://127.0.0.1:11434/v1",
        validation_alias=AliasChoices(
            "SANDFORGE_OLLAMA_BASE_URL", "OLLAMA_BASE_URL", "ollama_base_url"
        ),
    )
    ollama_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "SANDFORGE_OLLAMA_API_KEY", "OLLAMA_API_KEY", "ollama_api_key"
        ),
    )
    allowed_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Models a request may choose besides the configured one (comma-separated; `*` globs)."""
    # Retries of failed model requests: backoff with jitter, honouring Retry-After.
    model_max_retries: int = Field(default=5, ge=0)
    model_retry_base_s: float = Field(default=1.0, ge=0)
    model_retry_max_s: float = Field(default=60.0, ge=0)
    model_timeout_s: float = Field(default=180.0, gt=0)
    """How long one model request may stay silent before it counts as timed out."""
    # Per-run limits on the model's work; the defaults suit a whole app build.
    max_model_requests: int = Field(default=200, ge=1)
    max_tool_calls: int = Field(default=400, ge=1)
    max_run_tokens: int = Field(default=5_000_000, ge=1)
    max_run_seconds: float = Field(default=1800.0, gt=0)

    sandbox_provider: SandboxProviderName = Field(
        default="local", validation_alias=AliasChoices("SANDFORGE_SANDBOX", "sandbox_provider")
    )
    keep_on_error: bool = False
    allow_unisolated: bool = False

    daytona_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DAYTONA_API_KEY", "daytona_api_key")
    )
    daytona_api_url: str = Field(
        default="https://app.daytona.io/api",
        validation_alias=AliasChoices("DAYTONA_API_URL", "daytona_api_url"),
    )
    daytona_target: str | None = Field(
        default=None, validation_alias=AliasChoices("DAYTONA_TARGET", "daytona_target")
    )
    # Daytona sandboxes (SANDFORGE_DAYTONA_*). An image wins over a snapshot; with neither,
    # Daytona's default snapshot is used. Only image creates carry cpu, memory and disk.
    daytona_image: str | None = None
    daytona_snapshot: str | None = None
    daytona_project_dir: str = "/home/daytona/project"
    """The project dir inside a Daytona sandbox; relative paths resolve against it."""
    daytona_create_timeout_s: float = Field(default=120.0, gt=0)
    daytona_cleanup_grace_s: float = Field(default=30.0, ge=0)
    """After a create times out, how long to watch for the late sandbox, to delete it."""

    database_url: str | None = None
    """SQLAlchemy URL; default SQLite at `<data_dir>/sandforge.db`. `postgresql://...` works."""

    template_cache_dir: Path | None = None
    """Installed template packages (node_modules); /var/cache/sandforge/templates as root,
    else <data_dir>/templates. Filled by `sandforge templates prepare`."""

    rootfs_dir: Path | None = None
    """Where sandbox images are built; /var/cache/sandforge/rootfs as root, else
    <data_dir>/rootfs. Filled by `sandforge templates prepare`."""
    rootfs_mirror: str = "http://deb.debian.org/debian"
    """The Debian mirror sandbox images are built from; a snapshot.debian.org URL pins them."""
    rootfs_packages: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Debian packages the sandbox image holds besides Python, Node, git and build tools
    (SANDFORGE_ROOTFS_PACKAGES, comma-separated)."""

    ui_vendor_dir: Path | None = None
    """The web UI's libraries (CodeMirror, marked, DOMPurify); /var/cache/sandforge/ui as root,
    else ~/.cache/sandforge/ui. Filled by `sandforge ui prepare`."""
    registry_npm: str = "https://registry.npmjs.org"
    registry_pypi: str = "https://pypi.org/simple"
    registry_pypi_files: str = "https://files.pythonhosted.org"
    """The package bridge's upstreams (SANDFORGE_REGISTRY_NPM, _PYPI, _PYPI_FILES): the only
    places a local sandbox without egress reaches, for `npm install` and `pip install`."""
    registry_cache_mb: int = Field(default=4096, ge=1)
    """The package bridge keeps at most this much of what it fetched (SANDFORGE_REGISTRY_CACHE_MB);
    the least recently used packages go first."""

    render_check: bool = True
    """Load each finished preview in headless Chromium and report what it shows."""
    repair_attempts: int = Field(default=3, ge=0, le=20)
    """How often problems found after a turn (the rendered check's, the build's) go back to
    the model to fix; 0 turns the repair loop off."""
    chromium_path: str | None = None
    """Chromium for the rendered check; found on PATH when unset."""

    idle_stop_minutes: float = 30.0
    """Local sandboxes with no run and no preview request for this long are stopped (their
    files stay; opening the project's preview starts them again). 0 keeps them running."""

    idle_delete_days: float = Field(default=0.0, ge=0)
    """Sandboxes stopped for this many days are deleted (their files stay in the store; the
    project rebuilds its sandbox when it is opened again). 0 keeps them."""

    budget_run_usd: float | None = Field(default=None, gt=0)
    """A run stops once its model cost reaches this (USD); its files are kept."""
    budget_project_usd: float | None = Field(default=None, gt=0)
    """A project's runs stop once all its runs together cost this much (USD)."""
    budget_day_usd: float | None = Field(default=None, gt=0)
    """Runs stop once all runs of the day (UTC) together cost this much (USD)."""

    github_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GITHUB_TOKEN", "SANDFORGE_GITHUB_TOKEN")
    )
    """Pushes projects to GitHub. It stays in the server: never in a sandbox, log or page."""
    github_api_url: str = "https://api.github.com"
    """GitHub's REST API; GitHub Enterprise's is `https://HOST/api/v3`."""

    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Host names the UI and API answer to besides loopback's (comma-separated): the name
    users reach this server by. Any other Host header is refused, against DNS rebinding."""
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Bearer tokens for API clients and the CLI (comma-separated). Setting one (or
    `admin_password`) turns authentication on; it is required off loopback."""
    admin_password: SecretStr | None = None
    """The password of the UI's sign-in page."""
    session_hours: float = Field(default=12.0, gt=0)
    """How long a UI sign-in lasts."""
    max_sandboxes: int = Field(default=20, ge=1)
    """Sandboxes running at once; a run or preview that would start another is refused
    with a 429 that says so (stop or delete one, or raise this)."""

    shutdown_grace_s: float = Field(default=5.0, ge=0)
    """On SIGTERM or Ctrl-C, how long runs in flight may go on to finish before they are
    marked interrupted; the whole shutdown takes at most about this plus 2 s."""

    max_concurrent_runs: int = 8
    """Runs beyond this wait in a queue (and say so) instead of overloading the machine.
    With replicas, the limit of each replica."""

    # Several replicas (README: "Running several replicas"): all share one Postgres
    # (SANDFORGE_DATABASE_URL) and one Redis; without Redis a server runs alone.
    redis_url: str | None = None
    """`redis://host:6379/0`: turns replicas on (the runs queue, events from any replica)."""
    redis_prefix: str = "sandforge"
    """Prefix of this deployment's Redis channels, so several can share one Redis."""
    replica_id: str | None = None
    """This replica's name in the registry; unique per process when unset."""
    replica_address: str | None = None
    """Where the other replicas reach this one (previews of its local sandboxes);
    `http://<host>:<port>` when unset, which suits replicas on one machine only."""
    replica_heartbeat_s: float = Field(default=1.0, gt=0)
    replica_dead_after_s: float = Field(default=5.0, gt=0)
    """A replica whose heartbeat is older than this is dead: its runs end interrupted."""
    worker_recycle_after: int = 200
    """The warm fork server is replaced after this many runs."""

    max_prompt_chars: int = 20_000
    max_messages: int = 200
    max_body_bytes: int = Field(default=8 << 20, ge=1024)
    """Largest request body the API reads; a larger one is refused with a 413 before it is
    read in full (a conversation of `max_messages` long messages fits)."""
    dev_server_ready_timeout_s: float = 60.0

    min_free_disk_mb: int = Field(default=2048, ge=0)
    """No new local sandbox while the data dir's disk has less free space than this (MiB).
    A sandbox's disk image grows as it is used, up to its `disk_mb` (1024 by default), and
    the database and logs need room too: 2048 leaves a new sandbox its whole image and as
    much again. 0 turns the check off."""

    render_concurrency: int = Field(default=4, ge=1)
    """Rendered checks that run at once in the one warm browser; more wait in line."""
    render_recycle_after: int = Field(default=100, ge=1)
    """The rendered check's browser is replaced after this many checks."""
    render_timeout_s: float = Field(default=30.0, gt=0)
    """How long one rendered check may take to load and settle the page."""
    render_not_app_markers: Annotated[list[str] | None, NoDecode] = None
    """Text that marks a preview as not the app (comma-separated). Unset: sandforge's proxy
    error pages, directory listings and Daytona's warning page."""

    @field_validator(
        "allowed_models",
        "allowed_hosts",
        "api_tokens",
        "render_not_app_markers",
        "rootfs_packages",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def sandboxes_dir(self) -> Path:
        return self.data_dir / "sandboxes"

    @property
    def template_cache(self) -> Path:
        own = self.data_dir / "templates"
        return self.template_cache_dir or machine_cache_dir("templates", own)

    @property
    def rootfs(self) -> Rootfs:
        """The sandbox image local sandboxes run on."""
        from .sandbox.local.rootfs import Rootfs

        rootfs_dir = self.rootfs_dir or machine_cache_dir("rootfs", self.data_dir / "rootfs")
        return Rootfs(rootfs_dir, self.system_image)

    @property
    def system_image(self) -> SystemImage:
        """The Debian suite and packages every sandbox's system holds."""
        from .sandbox.system import SystemImage

        return SystemImage(mirror=self.rootfs_mirror, extra_packages=tuple(self.rootfs_packages))

    @property
    def ui_vendor(self) -> Path:
        from .server.vendor import default_root

        return self.ui_vendor_dir or default_root()

    @property
    def control_socket(self) -> Path:
        return self.data_dir / "sandboxd.sock"

    @property
    def auth_required(self) -> bool:
        return bool(self.api_tokens) or self.admin_password is not None

    @property
    def session_key_file(self) -> Path:
        return self.data_dir / "session.key"

    @property
    def secrets_key_file(self) -> Path:
        return self.data_dir / "secrets.key"

    def published_url(self, slug: str) -> str:
        return f"{self.preview_scheme}://{slug}.apps.{self.preview_domain}:{self.port}/"

    def preview_url(self, sandbox_id: str, port: int) -> str:
        return f"{self.preview_scheme}://{port}-{sandbox_id}.{self.preview_domain}:{self.port}/"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
