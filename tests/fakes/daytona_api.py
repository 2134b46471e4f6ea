"""A local stand-in for Daytona's REST API, toolbox API and preview proxy.

The official async SDK (``daytona.AsyncDaytona``, 0.226.x) runs unchanged against it::

    with FakeDaytona(api_key="k") as fake:
        async with AsyncDaytona(fake.sdk_config()) as daytona:  # or DaytonaConfig(
            sandbox = await daytona.create(...)  # api_key=..., api_url=fake.url, target="us")

Everything is served by one aiohttp server on 127.0.0.1 (own event loop, background thread).

URLs
    ``fake.url``           ``http://127.0.0.1:<p>/api``: the ``api_url`` for the SDK.
    ``fake.toolbox_url``   ``http://127.0.0.1:<p>/toolbox``: returned as every sandbox's
                           ``toolboxProxyUrl``. The SDK calls
                           ``{toolboxProxyUrl}/{sandboxId}/<path>``.
    preview (path style)   ``http://127.0.0.1:<p>/preview/{sandboxId}/{port}`` (no trailing
                           slash, like the real ``https://{port}-{id}.proxy...`` URL, so
                           ``url + "/x"`` works). Reverse-proxies HTTP *and* WebSocket,
                           streaming, to ``127.0.0.1:{port}``. The upstream sees
                           ``Host: localhost:{port}``.
    preview (host style)   with ``FakeDaytona(preview_host_style=True)`` the URL is
                           ``http://{port}-{sandboxId}.localhost:<p>``. Browsers (Chromium,
                           Playwright) resolve ``*.localhost`` to loopback; Python's resolver
                           does not here, so send ``Host:`` yourself when not using a browser.
                           Requests with such a Host header are always routed to the preview.
    signed preview         ``/preview-signed/{token}``, or ``{port}-{token}.localhost`` in host
                           style.

    Path-style previews are fine for programmatic HTTP checks, but a page that loads assets by
    absolute path (``/src/main.js``) or by a relative path from the bare URL won't work in a
    browser. Use host style for browser tests. Limitation: the proxy targets 127.0.0.1:{port} on
    the host, so two sandboxes listening on the same port clash. Run one dev server per port at
    a time.

Preview warning
    Like Daytona's proxy, a request whose User-Agent names a browser (Chrome, Firefox, Safari,
    Edge, Opera, Vivaldi, Samsung Internet; not HeadlessChrome) gets Daytona's warning page
    (200, HTML, not the app) before any auth check, unless it carries
    ``X-Daytona-Skip-Preview-Warning: true``, is a WebSocket upgrade, or has the
    ``daytona-preview-page-accepted=true`` cookie that the page's form sets
    (``POST /accept-daytona-preview-warning?redirect=<url>``, which redirects back).
    Non-browser clients (the SDK, httpx, curl) never see it. ``preview_warning = False`` turns
    it off, as an organization can on Daytona.

Preview auth
    Public sandboxes need nothing. Private ones accept the token from the preview-url endpoint
    in the ``x-daytona-preview-token`` header, in ``?token=`` (which is stripped before
    forwarding and set as a cookie so follow-up asset requests work), in that cookie, or
    ``Authorization: Bearer <api key>``. Otherwise 401. The token is per sandbox (the same for
    every port) and, as on Daytona, a new one is issued each time the sandbox starts again
    after a stop, so a token fetched before the restart gets 401. A sandbox that isn't
    started gives 502, and a closed upstream port gives 502.

Path mapping (file API, process cwd)
    Each sandbox gets ``<base>/<sandboxId>/fs``. That directory plays the sandbox's ``/``: the
    sandbox path ``/x/y`` is ``<base>/<id>/fs/x/y`` on the host. The user is ``daytona`` with
    home and work dir ``/home/daytona`` (``HOME_DIR``). Relative paths resolve against it, as
    the SDK documents ("relative to the sandbox working directory"). ``..`` can't escape the
    fake root. ``fake.host_path(sandbox_id, "/home/daytona/x")`` gives the host path, and so
    does ``fake.sandboxes[id].host_path("x")``.

Processes
    ``process.exec`` and session commands are REAL ``bash -c`` subprocesses on the host (no
    isolation). The cwd is mapped as above. The env is the host env, plus the sandbox env from
    create (``env_vars``), plus the request env, with ``HOME`` set to the mapped home. When
    ``translate_paths`` is on (the default), the literal prefix ``/home/daytona`` in command
    strings and env values is rewritten to the mapped host home, and the host root prefix is
    mapped back to ``/`` in returned output (so ``pwd`` prints ``/home/daytona/...``). Other
    absolute paths inside commands (``/tmp``, ``/workspace``) refer to the HOST. Keep sandbox
    work under ``/home/daytona``. Every spawned process carries ``FAKE_DAYTONA_SANDBOX=...`` in
    its environment, so stop/delete/close kill it even if it left its process group.

    ``exec``: stdout and stderr are combined into ``result`` (like the daemon). No timeout by
    default. With ``timeout`` the process group is killed and a 408 ``PROCESS_EXECUTION_TIMEOUT``
    daemon error is returned, which the SDK raises as ``DaytonaProcessExecutionTimeoutError``.
    A background child that keeps stdout open blocks the call, as the SDK warns for the real one.

    Sessions: each command is its own ``bash -c``. After a synchronous command, its final
    ``pwd`` and exported env are carried into the session's next commands, emulating the real
    persistent shell (``cd``/``export`` persist). ``runAsync`` commands run in the background
    with the session's current cwd/env; their state changes don't persist, like ``cmd &``.
    Async commands have a stdin pipe (send_session_command_input); sync ones get /dev/null.
    Logs are kept per stream: ``output`` is both streams interleaved in arrival order. The
    WebSocket follow endpoint (``get_session_command_logs_async``) streams chunks framed with
    the SDK's ``\\x01\\x01\\x01`` / ``\\x02\\x02\\x02`` stdout/stderr prefixes, and closes with 1000
    when the command ends. A process killed by signal N reports exit code 128+N.

Lifecycle
    Create returns state ``started`` at once (the SDK then doesn't poll). Stop kills all the
    sandbox's processes, drops its sessions and sets ``stopped``. Files stay. An ephemeral
    sandbox (``autoDeleteInterval == 0``, e.g. ``ephemeral=True``) is destroyed on stop instead,
    as on Daytona. Start sets ``started`` and restarts nothing. Delete kills processes,
    removes the directory and forgets the sandbox: a later GET is 404. The SDK's socket.io event
    stream (``/api/socket.io/``) is not implemented. It gets a 404, which the SDK tolerates by
    falling back to polling. Those requests are not recorded. Toolbox calls to a sandbox that
    isn't started get a 400 daemon error.

Not implemented (404 daemon/API error)
    PTY, git, LSP, computer-use, interpreter, files find/search/replace/permissions/upload-v2,
    signed file URLs, metrics/telemetry, snapshots, volumes, build logs, fork, resize, and
    image context uploads (``Image`` objects with local files). ``image="name"`` strings work.

Test knobs (attributes/methods on FakeDaytona)
    ``requests``               list of RecordedRequest (method, path, query, headers, json, kind),
                               covering API, toolbox and preview traffic, with 401s included.
    ``find_requests(method=None, path=None)``  filter helper (``path`` is a regex, searched).
    ``sandboxes``              dict id -> FakeSandbox (labels, env, cpu, public, intervals,
                               create_request (raw JSON), state, preview_token, ...).
    ``api_key``                accepted Bearer key (settable). Others get 401.
    ``always_unauthorized``    True -> every API/toolbox request is 401.
    ``preview_warning``        False -> browsers get the app without Daytona's warning page.
    ``create_delay``           seconds POST /sandbox sleeps BEFORE creating. The sandbox is
                               still created if the client gave up: orphans are realistic.
    ``create_error_reason``    if set, new sandboxes are created in state ``error`` with that
                               reason. The SDK then raises "entered error state".
    ``fail_next(status, method=None, path=None, message=..., times=1)``  inject errors.
    ``expire(sandbox_id)``     make a sandbox vanish (processes killed, dir removed, then 404s).
    ``stop_sandbox(sandbox_id)``  stop server-side, as auto-stop would.
    ``close()`` / ``stop()`` / context manager  kill every process and remove all temp dirs.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import posixpath
import re
import secrets
import shutil
import signal
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote, unquote_plus

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

if TYPE_CHECKING:
    from daytona import DaytonaConfig

__all__ = [
    "HOME_DIR",
    "FakeCommand",
    "FakeDaytona",
    "FakeSandbox",
    "FakeSession",
    "RecordedRequest",
]

HOME_DIR = "/home/daytona"
MARKER_ENV = "FAKE_DAYTONA_SANDBOX"
STDOUT_PREFIX = b"\x01\x01\x01"
STDERR_PREFIX = b"\x02\x02\x02"

RequestKind = Literal["api", "toolbox", "preview", "other"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_T = TypeVar("_T")

# Headers never forwarded by the preview proxy (hop-by-hop, or ours).
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "x-daytona-preview-token",
    }
)
_WS_HANDSHAKE_HEADERS = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    }
)
_PREVIEW_HOST_RE = re.compile(r"^(\d{1,5})-([A-Za-z0-9_-]+)\.localhost(?::\d+)?$", re.IGNORECASE)
_HOME_IN_TEXT_RE = re.compile(r"(?<![\w.\-/])" + re.escape(HOME_DIR) + r"(?=$|[/\s'\";:&|)<>`=,])")
_PREVIEW_COOKIE = "daytona-preview-token"
SKIP_WARNING_HEADER = "X-Daytona-Skip-Preview-Warning"
WARNING_ACCEPTED_COOKIE = "daytona-preview-page-accepted"
ACCEPT_WARNING_PATH = "/accept-daytona-preview-warning"
WARNING_TITLE = "Preview URL Warning"
# Browsers as Daytona's user-agent parser names them; HeadlessChrome is a browser of its own.
_BROWSER_UA_RE = re.compile(
    r"\b(Chrome|CriOS|Firefox|FxiOS|Safari|Edge?|OPR|Vivaldi|SamsungBrowser)/"
)
# Variables a finished command's shell reports that must not leak into the next command.
_SHELL_STATE_VARS = frozenset({"PWD", "OLDPWD", "SHLVL", "_", MARKER_ENV})


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _exit_code(returncode: int) -> int:
    """asyncio reports death-by-signal N as -N; a shell would report 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def _as_int(value: object, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def _str_dict(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


@dataclass
class RecordedRequest:
    """One request the fake received (in arrival order)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    json: Any
    kind: RequestKind
    status: int | None = None
    form: dict[str, Any] | None = None  # filled by multipart handlers (e.g. uploaded paths)


_RECORD_KEY = web.RequestKey("fake_daytona_record", RecordedRequest)


@dataclass
class _FailureRule:
    status: int
    method: str | None
    path: re.Pattern[str] | None
    message: str
    remaining: int


@dataclass
class FakeCommand:
    """A command run in a session. ``chunks`` holds (stream, bytes) in arrival order."""

    id: str
    command: str
    run_async: bool
    chunks: list[tuple[Literal["stdout", "stderr"], bytes]] = field(default_factory=list)
    exit_code: int | None = None
    proc: asyncio.subprocess.Process | None = None
    started_at: float = field(default_factory=time.monotonic)

    def text(self, stream: Literal["stdout", "stderr", "output"]) -> str:
        data = b"".join(c for kind, c in self.chunks if stream in ("output", kind))
        return data.decode("utf-8", errors="replace")


@dataclass
class FakeSession:
    id: str
    cwd: Path
    env: dict[str, str]
    commands: dict[str, FakeCommand] = field(default_factory=dict)


@dataclass
class FakeSandbox:
    """Server-side state of one fake sandbox. Tests may read (and poke) these fields."""

    id: str
    name: str
    base_dir: Path
    create_request: dict[str, Any]
    organization_id: str
    target: str
    user: str = "daytona"
    state: str = "started"
    snapshot: str | None = None
    build_info: dict[str, Any] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    public: bool = False
    cpu: int = 1
    gpu: int = 0
    memory: int = 1
    disk: int = 3
    auto_stop_interval: int = 15
    auto_pause_interval: int = 0
    auto_archive_interval: int = 10080
    auto_delete_interval: int = -1
    ttl_minutes: int | None = None
    network_block_all: bool = False
    network_allow_list: str | None = None
    domain_allow_list: str | None = None
    volumes: list[dict[str, Any]] = field(default_factory=list)
    error_reason: str | None = None
    preview_token: str = field(default_factory=lambda: secrets.token_hex(16))
    created_at: str = field(default_factory=_now_iso)
    updated_at: str = field(default_factory=_now_iso)
    last_activity_at: str = field(default_factory=_now_iso)
    sessions: dict[str, FakeSession] = field(default_factory=dict)
    processes: set[asyncio.subprocess.Process] = field(default_factory=set)
    preview_requests: list[int] = field(default_factory=list)  # ports asked for preview URLs

    @property
    def root(self) -> Path:
        """Host directory that plays the sandbox's ``/``."""
        return self.base_dir / "fs"

    @property
    def meta_dir(self) -> Path:
        return self.base_dir / "meta"

    @property
    def home(self) -> Path:
        """Host directory for ``/home/daytona`` (home and work dir)."""
        return self.host_path(HOME_DIR)

    def virtual_path(self, path: str | None, base: str = HOME_DIR) -> str:
        """Normalise a sandbox path: relative -> under ``base``; ``..`` can't escape ``/``."""
        p = path or base
        if not p.startswith("/"):
            p = posixpath.join(base, p)
        norm = posixpath.normpath(p)
        return "/" + norm.lstrip("/")

    def host_path(self, path: str | None, base: str = HOME_DIR) -> Path:
        """Host path for a sandbox path (absolute, or relative to the home/work dir)."""
        rel = self.virtual_path(path, base).lstrip("/")
        return self.root / rel if rel else self.root

    def to_sandbox_path(self, host: Path) -> str:
        rel = host.relative_to(self.root).as_posix()
        return "/" if rel == "." else "/" + rel

    def translate_in(self, text: str) -> str:
        home = str(self.home)
        return _HOME_IN_TEXT_RE.sub(lambda _m: home, text)

    def translate_out(self, text: str) -> str:
        root = str(self.root)
        return text.replace(root + "/", "/").replace(root, "/")

    def marker(self, instance: str) -> str:
        return f"{instance}:{self.id}"

    def to_api(self, toolbox_url: str, *, full: bool = True) -> dict[str, Any]:
        dto: dict[str, Any] = {
            "id": self.id,
            "organizationId": self.organization_id,
            "name": self.name,
            "snapshot": self.snapshot,
            "user": self.user,
            "labels": dict(self.labels),
            "public": self.public,
            "networkBlockAll": self.network_block_all,
            "networkAllowList": self.network_allow_list,
            "domainAllowList": self.domain_allow_list,
            "target": self.target,
            "cpu": self.cpu,
            "gpu": self.gpu,
            "spot": False,
            "memory": self.memory,
            "disk": self.disk,
            "state": self.state,
            "desiredState": _DESIRED_STATE.get(self.state, "started"),
            "errorReason": self.error_reason,
            "recoverable": False if self.state == "error" else None,
            "backupState": None,
            "autoStopInterval": self.auto_stop_interval,
            "autoPauseInterval": self.auto_pause_interval,
            "autoArchiveInterval": self.auto_archive_interval,
            "autoDeleteInterval": self.auto_delete_interval,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "lastActivityAt": self.last_activity_at,
            "daemonVersion": "fake-daytona",
            "runnerId": "fake-runner",
            "toolboxProxyUrl": toolbox_url,
        }
        if full:
            dto.update(
                {
                    "env": dict(self.env),
                    "kvm": False,
                    "volumes": list(self.volumes),
                    "buildInfo": self.build_info,
                    "backupCreatedAt": None,
                }
            )
        return dto


_DESIRED_STATE = {
    "started": "started",
    "stopped": "stopped",
    "archived": "archived",
    "destroyed": "destroyed",
    "error": "started",
}


def _marked_pids(match: Callable[[bytes], bool]) -> list[int]:
    """PIDs whose environment has a ``FAKE_DAYTONA_SANDBOX=...`` entry accepted by ``match``."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    me = os.getpid()
    prefix = MARKER_ENV.encode() + b"="
    found: list[int] = []
    for entry in os.listdir(proc):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            data = (proc / entry / "environ").read_bytes()
        except OSError:
            continue
        for var in data.split(b"\0"):
            if var.startswith(prefix) and match(var[len(prefix) :]):
                found.append(int(entry))
                break
    return found


def _signal_all(pids: Iterable[int], groups: Iterable[int], sig: signal.Signals) -> None:
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def _parse_env0(data: bytes) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _file_info(host: Path, sandbox_path: str) -> dict[str, Any]:
    st = host.lstat() if host.is_symlink() else host.stat()
    mtime = datetime.fromtimestamp(st.st_mtime, UTC)
    return {
        "name": host.name or "/",
        "path": sandbox_path,
        "isDir": stat.S_ISDIR(st.st_mode),
        "size": st.st_size,
        "mode": stat.filemode(st.st_mode),
        "permissions": f"0{stat.S_IMODE(st.st_mode):o}",
        "owner": "daytona",
        "group": "daytona",
        "modTime": mtime.strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC"),
        "modifiedAt": mtime.isoformat().replace("+00:00", "Z"),
    }


def _content_disposition(name: str, filename: str) -> str:
    escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
    value = f'form-data; name="{name}"; filename="{escaped}"'
    if not filename.isascii():
        value += f"; filename*=utf-8''{quote(filename, safe='')}"
    return value


class FakeDaytona:
    """Fake Daytona API + toolbox + preview proxy on 127.0.0.1. See the module docstring."""

    def __init__(
        self,
        api_key: str = "fake-daytona-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        target: str = "us",
        organization_id: str = "fake-org",
        preview_host_style: bool = False,
        translate_paths: bool = True,
        base_dir: str | Path | None = None,
    ) -> None:
        self.api_key: str = api_key
        self.host = host
        self.target = target
        self.organization_id = organization_id
        self.preview_host_style = preview_host_style
        self.translate_paths = translate_paths
        # knobs
        self.always_unauthorized: bool = False
        self.preview_warning: bool = True
        self.create_delay: float = 0.0
        self.create_error_reason: str | None = None
        # observable state
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.requests: list[RecordedRequest] = []

        self._requested_port = port
        self._port: int | None = None
        self._instance = uuid.uuid4().hex[:12]
        self._parent_dir = Path(base_dir) if base_dir is not None else None
        self._base_dir: Path | None = None
        self._failures: list[_FailureRule] = []
        self._signed: dict[str, tuple[str, int, float | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._websockets: set[web.WebSocketResponse] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._started = False

    # ------------------------------------------------------------------ public API

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDaytona is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The ``api_url`` to give the SDK."""
        return f"{self.base_url}/api"

    @property
    def toolbox_url(self) -> str:
        return f"{self.base_url}/toolbox"

    @property
    def base_dir(self) -> Path:
        if self._base_dir is None:
            raise RuntimeError("FakeDaytona is not started")
        return self._base_dir

    def sdk_config(self, **overrides: Any) -> DaytonaConfig:
        """A ``daytona.DaytonaConfig`` pointing at this fake (``target`` defaults to ours)."""
        from daytona import DaytonaConfig

        values: dict[str, Any] = {
            "api_key": self.api_key,
            "api_url": self.url,
            "target": self.target,
        }
        values.update(overrides)
        return DaytonaConfig(**values)

    def start(self) -> FakeDaytona:
        if self._started:
            return self
        self._base_dir = Path(tempfile.mkdtemp(prefix="fake-daytona-", dir=self._parent_dir))
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:  # surfaced to start()
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-daytona", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("FakeDaytona did not start within 30s")
        if errors:
            shutil.rmtree(self._base_dir, ignore_errors=True)
            raise errors[0]
        self._started = True
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Kill every process, shut the server down and remove all temp dirs. Idempotent."""
        if not self._started:
            return
        self._started = False
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(self._astop(), loop)
            with contextlib.suppress(Exception):
                fut.result(60)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
        # Belt and braces: anything still carrying our marker dies now.
        prefix = f"{self._instance}:".encode()
        leftovers = _marked_pids(lambda v: v.startswith(prefix))
        _signal_all(leftovers, (), signal.SIGKILL)
        if self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)

    close = stop

    def __enter__(self) -> FakeDaytona:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeDaytona:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def fail_next(
        self,
        status: int,
        *,
        method: str | None = None,
        path: str | None = None,
        message: str = "Injected failure",
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching API/toolbox requests with ``status``.

        ``path`` is a regex searched in the request path (e.g. ``r"/sandbox$"``).
        """
        rule = _FailureRule(
            status=status,
            method=method.upper() if method else None,
            path=re.compile(path) if path else None,
            message=message,
            remaining=times,
        )
        with self._lock:
            self._failures.append(rule)

    def find_requests(
        self, method: str | None = None, path: str | None = None
    ) -> list[RecordedRequest]:
        pattern = re.compile(path) if path else None
        return [
            r
            for r in list(self.requests)
            if (method is None or r.method == method.upper())
            and (pattern is None or pattern.search(r.path))
        ]

    def host_path(self, sandbox_id: str, path: str = HOME_DIR) -> Path:
        return self.sandboxes[sandbox_id].host_path(path)

    def expire(self, sandbox_id: str) -> None:
        """Make a sandbox disappear server-side (as expiry/auto-delete would): GET -> 404."""
        self._call(self._destroy(sandbox_id))

    def stop_sandbox(self, sandbox_id: str) -> None:
        """Stop a sandbox server-side (as auto-stop would)."""
        self._call(self._stop_sb(self.sandboxes[sandbox_id]))

    # ------------------------------------------------------------------ thread plumbing

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        loop = self._loop
        if loop is None or not self._started:
            coro.close()
            raise RuntimeError("FakeDaytona is not started")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coro.close()
            raise RuntimeError("cannot block on the fake's own loop")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    def _spawn_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _astart(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=1024**3)
        self._add_routes(app)
        self._client = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self._port = int(address[1])

    async def _astop(self) -> None:
        for sb in list(self.sandboxes.values()):
            with contextlib.suppress(Exception):
                await self._kill_sandbox_processes(sb)
        prefix = f"{self._instance}:".encode()
        await self._terminate(lambda v: v.startswith(prefix), [])
        for ws in list(self._websockets):
            with contextlib.suppress(Exception):
                await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ process control

    async def _terminate(
        self, match: Callable[[bytes], bool], leaders: list[asyncio.subprocess.Process]
    ) -> None:
        """SIGTERM (then SIGKILL) every marked process and the groups of live leaders."""
        loop = asyncio.get_running_loop()

        def live_groups() -> list[int]:
            return [p.pid for p in leaders if p.returncode is None]

        _signal_all(_marked_pids(match), live_groups(), signal.SIGTERM)
        deadline = loop.time() + 3.0
        while loop.time() < deadline:
            if not _marked_pids(match) and not live_groups():
                break
            await asyncio.sleep(0.05)
        for _ in range(5):
            pids, groups = _marked_pids(match), live_groups()
            if not pids and not groups:
                break
            _signal_all(pids, groups, signal.SIGKILL)
            await asyncio.sleep(0.05)
        for p in leaders:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(p.wait(), 2)

    async def _kill_sandbox_processes(self, sb: FakeSandbox) -> None:
        marker = sb.marker(self._instance).encode()
        await self._terminate(lambda v: v == marker, list(sb.processes))
        sb.processes.clear()
        for session in sb.sessions.values():
            for cmd in session.commands.values():
                if cmd.exit_code is None:
                    cmd.exit_code = 143

    def _env(
        self,
        sb: FakeSandbox,
        session_env: Mapping[str, str] | None,
        extra: Mapping[str, str] | None,
    ) -> dict[str, str]:
        env = dict(os.environ)
        for source in (sb.env, session_env or {}, extra or {}):
            for k, v in source.items():
                env[k] = sb.translate_in(v) if self.translate_paths else v
        env["HOME"] = str(sb.home)
        env.setdefault("USER", sb.user)
        env[MARKER_ENV] = sb.marker(self._instance)
        return env

    async def _spawn(
        self,
        sb: FakeSandbox,
        script: str,
        cwd: Path,
        env: dict[str, str],
        *,
        stdin: bool,
        combined: bool,
    ) -> asyncio.subprocess.Process:
        env["PWD"] = str(cwd)
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            script,
            cwd=str(cwd),
            env=env,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if combined else asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        sb.processes.add(proc)
        return proc

    def _out(self, sb: FakeSandbox, text: str) -> str:
        return sb.translate_out(text) if self.translate_paths else text

    def _script(self, sb: FakeSandbox, command: str) -> str:
        return sb.translate_in(command) if self.translate_paths else command

    # ------------------------------------------------------------------ HTTP plumbing

    def _kind(self, path: str) -> RequestKind:
        if path.startswith("/api/"):
            return "api"
        if path.startswith("/toolbox/"):
            return "toolbox"
        if path.startswith(("/preview/", "/preview-signed/")):
            return "preview"
        return "other"

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if "/socket.io/" in path:
            return web.Response(status=404, text="socket.io is not implemented by FakeDaytona")
        host_match = _PREVIEW_HOST_RE.match(request.host or "")
        kind: RequestKind = "preview" if host_match else self._kind(path)
        body: Any = None
        if kind != "preview" and request.content_type == "application/json" and request.body_exists:
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
        record = RecordedRequest(
            method=request.method,
            path=path,
            query={k: request.query.getall(k) for k in request.query},
            headers=dict(request.headers),
            json=body,
            kind=kind,
        )
        self.requests.append(record)
        request[_RECORD_KEY] = record
        response = await self._dispatch(request, handler, kind, host_match)
        record.status = response.status
        return response

    async def _dispatch(
        self,
        request: web.Request,
        handler: Handler,
        kind: RequestKind,
        host_match: re.Match[str] | None,
    ) -> web.StreamResponse:
        if request.method == "POST" and request.path == ACCEPT_WARNING_PATH:
            return self._accept_warning(request)
        if host_match is not None:
            return await self._preview(request, host_match.group(2), int(host_match.group(1)), "")
        if kind == "preview":
            return await handler(request)
        daemon = kind == "toolbox"
        if (
            self.always_unauthorized
            or request.headers.get("Authorization") != f"Bearer {self.api_key}"
        ):
            return self._error(request, 401, "Unauthorized", daemon=daemon, code="UNAUTHORIZED")
        failure = self._take_failure(request)
        if failure is not None:
            return self._error(request, failure.status, failure.message, daemon=daemon)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return self._error(request, exc.status, exc.reason, daemon=daemon)
        except _HttpError as exc:
            return self._error(request, exc.status, exc.message, daemon=daemon, code=exc.code)

    def _take_failure(self, request: web.Request) -> _FailureRule | None:
        with self._lock:
            for rule in self._failures:
                if rule.method is not None and rule.method != request.method:
                    continue
                if rule.path is not None and not rule.path.search(request.path):
                    continue
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._failures.remove(rule)
                return rule
        return None

    @staticmethod
    def _error(
        request: web.Request, status: int, message: str, *, daemon: bool, code: str | None = None
    ) -> web.Response:
        body: dict[str, Any] = {
            "statusCode": status,
            "message": message,
            "timestamp": _now_iso(),
            "path": request.path,
            "method": request.method,
        }
        if daemon:
            body["source"] = "DAYTONA_DAEMON"
            body["code"] = code or _DAEMON_CODES.get(status, "INTERNAL_SERVER_ERROR")
        else:
            try:
                body["error"] = HTTPStatus(status).phrase
            except ValueError:
                body["error"] = "Error"
        return web.json_response(body, status=status)

    def _add_routes(self, app: web.Application) -> None:
        r = app.router
        api = "/api/sandbox"
        sid = "{sid}"
        r.add_post(api, self._h_create)
        r.add_get(api, self._h_list)
        r.add_get(f"{api}/{sid}", self._h_get)
        r.add_delete(f"{api}/{sid}", self._h_delete)
        r.add_post(f"{api}/{sid}/start", self._h_start)
        r.add_post(f"{api}/{sid}/stop", self._h_stop)
        r.add_post(f"{api}/{sid}/archive", self._h_archive)
        r.add_put(f"{api}/{sid}/labels", self._h_labels)
        r.add_post(f"{api}/{sid}/autostop/{{value}}", self._h_setter)
        r.add_post(f"{api}/{sid}/autoarchive/{{value}}", self._h_setter)
        r.add_post(f"{api}/{sid}/autodelete/{{value}}", self._h_setter)
        r.add_post(f"{api}/{sid}/autopause/{{value}}", self._h_setter)
        r.add_post(f"{api}/{sid}/ttl/{{value}}", self._h_setter)
        r.add_post(f"{api}/{sid}/public/{{value}}", self._h_setter)
        r.add_post(f"{api}/{sid}/last-activity", self._h_last_activity)
        r.add_get(f"{api}/{sid}/toolbox-proxy-url", self._h_toolbox_url)
        r.add_get(f"{api}/{sid}/ports/{{port}}/preview-url", self._h_preview_url)
        r.add_get(f"{api}/{sid}/ports/{{port}}/signed-preview-url", self._h_signed_url)
        r.add_post(
            f"{api}/{sid}/ports/{{port}}/signed-preview-url/{{token}}/expire", self._h_expire_signed
        )
        tb = "/toolbox/{sid}"
        r.add_get(f"{tb}/version", self._t_version)
        r.add_get(f"{tb}/user-home-dir", self._t_home_dir)
        r.add_get(f"{tb}/work-dir", self._t_home_dir)
        r.add_post(f"{tb}/env", self._t_update_env)
        r.add_post(f"{tb}/process/execute", self._t_execute)
        r.add_post(f"{tb}/process/code-run", self._t_code_run)
        r.add_post(f"{tb}/process/session", self._t_create_session)
        r.add_get(f"{tb}/process/session", self._t_list_sessions)
        r.add_get(f"{tb}/process/session/{{session}}", self._t_get_session)
        r.add_delete(f"{tb}/process/session/{{session}}", self._t_delete_session)
        r.add_post(f"{tb}/process/session/{{session}}/exec", self._t_session_exec)
        r.add_get(f"{tb}/process/session/{{session}}/command/{{cmd}}", self._t_get_command)
        r.add_get(f"{tb}/process/session/{{session}}/command/{{cmd}}/logs", self._t_command_logs)
        r.add_post(f"{tb}/process/session/{{session}}/command/{{cmd}}/input", self._t_command_input)
        r.add_get(f"{tb}/files", self._t_list_files)
        r.add_delete(f"{tb}/files", self._t_delete_file)
        r.add_get(f"{tb}/files/info", self._t_file_info)
        r.add_post(f"{tb}/files/folder", self._t_create_folder)
        r.add_post(f"{tb}/files/move", self._t_move)
        r.add_post(f"{tb}/files/bulk-upload", self._t_bulk_upload)
        r.add_post(f"{tb}/files/bulk-download", self._t_bulk_download)
        r.add_get(f"{tb}/files/download", self._t_download)
        r.add_route("*", "/preview/{sid}/{port:\\d+}{tail:(/.*)?}", self._h_preview_path)
        r.add_route("*", "/preview-signed/{token}{tail:(/.*)?}", self._h_preview_signed_path)

    # ------------------------------------------------------------------ API: sandboxes

    def _lookup(self, key: str) -> FakeSandbox:
        sb = self.sandboxes.get(key)
        if sb is None:
            sb = next((s for s in self.sandboxes.values() if s.name == key), None)
        if sb is None:
            raise _HttpError(404, f"Sandbox with ID or name {key} not found", "NOT_FOUND")
        return sb

    def _dto(self, sb: FakeSandbox, *, full: bool = True) -> dict[str, Any]:
        return sb.to_api(self.toolbox_url, full=full)

    async def _h_create(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if self.create_delay > 0:
            await asyncio.sleep(self.create_delay)
        sandbox_id = str(uuid.uuid4())
        name = str(body.get("name") or sandbox_id)
        if any(s.name == name for s in self.sandboxes.values()):
            raise _HttpError(409, f"Sandbox with name {name} already exists", "CONFLICT")
        build_info: dict[str, Any] | None = None
        raw_build = body.get("buildInfo")
        if isinstance(raw_build, dict):
            now = _now_iso()
            build_info = {
                "dockerfileContent": raw_build.get("dockerfileContent"),
                "contextHashes": raw_build.get("contextHashes") or [],
                "createdAt": now,
                "updatedAt": now,
                "snapshotRef": f"fake-build-{sandbox_id[:8]}",
            }
        snapshot = body.get("snapshot")
        if snapshot is None and build_info is None:
            snapshot = "daytonaio/sandbox:fake"
        sb = FakeSandbox(
            id=sandbox_id,
            name=name,
            base_dir=self.base_dir / sandbox_id,
            create_request=body,
            organization_id=self.organization_id,
            target=str(body.get("target") or self.target),
            user=str(body.get("user") or "daytona"),
            snapshot=str(snapshot) if snapshot is not None else None,
            build_info=build_info,
            labels=_str_dict(body.get("labels")),
            env=_str_dict(body.get("env")),
            public=bool(body.get("public") or False),
            cpu=_as_int(body.get("cpu"), 1),
            gpu=_as_int(body.get("gpu"), 0),
            memory=_as_int(body.get("memory"), 1),
            disk=_as_int(body.get("disk"), 3),
            auto_stop_interval=_as_int(body.get("autoStopInterval"), 15),
            auto_pause_interval=_as_int(body.get("autoPauseInterval"), 0),
            auto_archive_interval=_as_int(body.get("autoArchiveInterval"), 10080),
            auto_delete_interval=_as_int(body.get("autoDeleteInterval"), -1),
            ttl_minutes=body.get("ttlMinutes") if isinstance(body.get("ttlMinutes"), int) else None,
            network_block_all=bool(body.get("networkBlockAll") or False),
            network_allow_list=body.get("networkAllowList"),
            domain_allow_list=body.get("domainAllowList"),
            volumes=list(body.get("volumes") or []),
        )
        for directory in (sb.home, sb.host_path("/tmp"), sb.meta_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if self.create_error_reason is not None:
            sb.state = "error"
            sb.error_reason = self.create_error_reason
        self.sandboxes[sandbox_id] = sb
        return web.json_response(self._dto(sb))

    async def _h_get(self, request: web.Request) -> web.Response:
        return web.json_response(self._dto(self._lookup(request.match_info["sid"])))

    async def _h_list(self, request: web.Request) -> web.Response:
        q = request.query
        items = [s for s in self.sandboxes.values() if s.state != "destroyed"]
        if "labels" in q:
            try:
                wanted = json.loads(q["labels"])
            except ValueError as exc:
                raise _HttpError(400, "labels must be a JSON object", "BAD_REQUEST") from exc
            if not isinstance(wanted, dict):
                raise _HttpError(400, "labels must be a JSON object", "BAD_REQUEST")
            items = [s for s in items if all(s.labels.get(k) == str(v) for k, v in wanted.items())]
        if "id" in q:
            items = [s for s in items if s.id.lower().startswith(q["id"].lower())]
        if "name" in q:
            items = [s for s in items if s.name.lower().startswith(q["name"].lower())]
        if "states" in q:
            states = set(q.getall("states"))
            items = [s for s in items if s.state in states]
        if "snapshots" in q:
            snaps = set(q.getall("snapshots"))
            items = [s for s in items if s.snapshot in snaps]
        if "regionIds" in q:
            regions = set(q.getall("regionIds"))
            items = [s for s in items if s.target in regions]
        if "isPublic" in q:
            want_public = q["isPublic"].lower() == "true"
            items = [s for s in items if s.public == want_public]
        items.sort(key=lambda s: s.created_at, reverse=q.get("order", "desc") != "asc")
        try:
            offset = int(q.get("cursor", "0") or "0")
            limit = int(q.get("limit", "100"))
        except ValueError as exc:
            raise _HttpError(400, "invalid cursor or limit", "BAD_REQUEST") from exc
        page = items[offset : offset + limit]
        next_cursor = str(offset + limit) if offset + limit < len(items) else None
        return web.json_response(
            {"items": [self._dto(s, full=False) for s in page], "nextCursor": next_cursor}
        )

    async def _h_delete(self, request: web.Request) -> web.Response:
        sb = self._lookup(request.match_info["sid"])
        await self._destroy(sb.id)
        return web.json_response(self._dto(sb))

    async def _destroy(self, sandbox_id: str) -> None:
        sb = self.sandboxes.pop(sandbox_id, None)
        if sb is None:
            return
        await self._kill_sandbox_processes(sb)
        sb.sessions.clear()
        sb.state = "destroyed"
        sb.updated_at = _now_iso()
        self._signed = {t: v for t, v in self._signed.items() if v[0] != sandbox_id}
        await asyncio.to_thread(shutil.rmtree, sb.base_dir, True)

    async def _h_start(self, request: web.Request) -> web.Response:
        sb = self._lookup(request.match_info["sid"])
        if sb.state != "started":
            sb.state = "started"
            sb.preview_token = secrets.token_hex(16)  # Daytona resets it on every restart
            sb.error_reason = None
            sb.updated_at = sb.last_activity_at = _now_iso()
        return web.json_response(self._dto(sb))

    async def _stop_sb(self, sb: FakeSandbox) -> None:
        if sb.auto_delete_interval == 0:  # ephemeral: deleted as soon as it stops
            await self._destroy(sb.id)
            return
        await self._kill_sandbox_processes(sb)
        sb.sessions.clear()
        sb.state = "stopped"
        sb.updated_at = _now_iso()

    async def _h_stop(self, request: web.Request) -> web.Response:
        sb = self._lookup(request.match_info["sid"])
        await self._stop_sb(sb)
        return web.json_response(self._dto(sb))

    async def _h_archive(self, request: web.Request) -> web.Response:
        sb = self._lookup(request.match_info["sid"])
        if sb.state != "stopped":
            raise _HttpError(400, "Sandbox must be stopped before archiving", "BAD_REQUEST")
        sb.state = "archived"
        sb.updated_at = _now_iso()
        return web.json_response(self._dto(sb))

    async def _h_labels(self, request: web.Request) -> web.Response:
        sb = self._lookup(request.match_info["sid"])
        body = await _json_body(request)
        sb.labels = _str_dict(body.get("labels"))
        sb.updated_at = _now_iso()
        return web.json_response({"labels": dict(sb.labels)})

    async def _h_setter(self, request: web.Request) -> web.Response:
        sb = self._lookup(request.match_info["sid"])
        what = request.path.rstrip("/").split("/")[-2]
        value = request.match_info["value"]
        if what == "public":
            sb.public = value.lower() == "true"
        else:
            try:
                number = int(value)
            except ValueError as exc:
                raise _HttpError(400, f"invalid {what} value {value!r}", "BAD_REQUEST") from exc
            if what == "autostop":
                sb.auto_stop_interval = number
            elif what == "autoarchive":
                sb.auto_archive_interval = number
            elif what == "autodelete":
                sb.auto_delete_interval = number
            elif what == "autopause":
                sb.auto_pause_interval = number
            else:
                sb.ttl_minutes = number
        sb.updated_at = _now_iso()
        return web.json_response(self._dto(sb))

    async def _h_last_activity(self, request: web.Request) -> web.Response:
        sb = self._lookup(request.match_info["sid"])
        sb.last_activity_at = _now_iso()
        return web.Response(status=201)

    async def _h_toolbox_url(self, request: web.Request) -> web.Response:
        self._lookup(request.match_info["sid"])
        return web.json_response({"url": self.toolbox_url})

    @staticmethod
    def _port_param(request: web.Request) -> int:
        try:
            port = int(request.match_info["port"])
        except ValueError:
            port = 0
        if not 1 <= port <= 65535:
            raise _HttpError(400, "Invalid port", "BAD_REQUEST")
        return port

    def _preview_url(self, key: str, port: int) -> str:
        if self.preview_host_style:
            return f"http://{port}-{key}.localhost:{self.port}"
        return f"{self.base_url}/preview/{key}/{port}"

    async def _h_preview_url(self, request: web.Request) -> web.Response:
        sb = self._lookup(request.match_info["sid"])
        port = self._port_param(request)
        sb.preview_requests.append(port)
        return web.json_response(
            {"sandboxId": sb.id, "url": self._preview_url(sb.id, port), "token": sb.preview_token}
        )

    async def _h_signed_url(self, request: web.Request) -> web.Response:
        sb = self._lookup(request.match_info["sid"])
        port = self._port_param(request)
        expires_in = int(request.query.get("expiresInSeconds", "60"))
        token = secrets.token_hex(16)
        self._signed[token] = (sb.id, port, time.time() + expires_in if expires_in > 0 else None)
        if self.preview_host_style:
            url = f"http://{port}-{token}.localhost:{self.port}"
        else:
            url = f"{self.base_url}/preview-signed/{token}"
        return web.json_response({"sandboxId": sb.id, "port": port, "token": token, "url": url})

    async def _h_expire_signed(self, request: web.Request) -> web.Response:
        self._lookup(request.match_info["sid"])
        self._signed.pop(request.match_info["token"], None)
        return web.Response(status=200)

    # ------------------------------------------------------------------ toolbox

    def _toolbox_sb(self, request: web.Request) -> FakeSandbox:
        sid = request.match_info["sid"]
        sb = self.sandboxes.get(sid)
        if sb is None:
            raise _HttpError(404, f"Sandbox {sid} not found", "NOT_FOUND")
        if sb.state != "started":
            raise _HttpError(
                400, f"Sandbox {sid} is not started (state: {sb.state})", "BAD_REQUEST"
            )
        sb.last_activity_at = _now_iso()
        return sb

    async def _t_version(self, request: web.Request) -> web.Response:
        self._toolbox_sb(request)
        return web.json_response({"version": "fake-daytona"})

    async def _t_home_dir(self, request: web.Request) -> web.Response:
        self._toolbox_sb(request)
        return web.json_response({"dir": HOME_DIR})

    async def _t_update_env(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        body = await _json_body(request)
        for key in body.get("unset") or []:
            sb.env.pop(str(key), None)
        sb.env.update(_str_dict(body.get("set")))
        return web.json_response(dict(sb.env))

    def _cwd(self, sb: FakeSandbox, cwd: object) -> Path:
        host = sb.host_path(str(cwd) if isinstance(cwd, str) and cwd else None)
        if not host.is_dir():
            raise _CwdMissing(sb.virtual_path(str(cwd)))
        return host

    async def _run_collect(
        self,
        sb: FakeSandbox,
        script: str,
        cwd: Path,
        env: dict[str, str],
        limit_s: object,
    ) -> tuple[int, str] | None:
        """Run to completion (stdout+stderr combined). None means it timed out (group killed)."""
        proc = await self._spawn(sb, script, cwd, env, stdin=False, combined=True)
        limit = float(limit_s) if isinstance(limit_s, int | float) and limit_s > 0 else None
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), limit)
        except TimeoutError:
            await self._terminate(lambda _v: False, [proc])
            sb.processes.discard(proc)
            return None
        sb.processes.discard(proc)  # stray background children are found via the env marker
        return _exit_code(proc.returncode or 0), self._out(
            sb, out.decode("utf-8", errors="replace")
        )

    async def _t_execute(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        body = await _json_body(request)
        command = body.get("command")
        if not isinstance(command, str) or not command.strip():
            raise _HttpError(400, "command is required", "INVALID_REQUEST_BODY")
        try:
            cwd = self._cwd(sb, body.get("cwd"))
        except _CwdMissing as exc:
            return web.json_response(
                {"exitCode": -1, "result": f"chdir {exc.path}: no such file or directory"}
            )
        env = self._env(sb, None, _str_dict(body.get("envs")))
        result = await self._run_collect(
            sb, self._script(sb, command), cwd, env, body.get("timeout")
        )
        if result is None:
            raise _HttpError(
                408,
                f"Command execution timed out after {body.get('timeout')} seconds. The timeout "
                "can be increased by adjusting the timeout parameter in the request.",
                "PROCESS_EXECUTION_TIMEOUT",
            )
        code, output = result
        return web.json_response({"exitCode": code, "result": output})

    async def _t_code_run(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        body = await _json_body(request)
        code = str(body.get("code") or "")
        language = str(body.get("language") or "python")
        argv = [str(a) for a in body.get("argv") or []]
        runner = {"python": "python3 -c", "javascript": "node -e"}.get(language)
        if runner is None:
            raise _HttpError(400, f"Unsupported language: {language}", "BAD_REQUEST")
        script = f'{runner} "$FAKE_DAYTONA_CODE"' + "".join(f" {_shq(a)}" for a in argv)
        env = self._env(sb, None, _str_dict(body.get("envs")))
        env["FAKE_DAYTONA_CODE"] = code
        result = await self._run_collect(sb, script, sb.home, env, body.get("timeout"))
        if result is None:
            raise _HttpError(408, "Code execution timed out", "PROCESS_EXECUTION_TIMEOUT")
        exit_code, output = result
        return web.json_response(
            {"exitCode": exit_code, "result": output, "artifacts": {"charts": []}}
        )

    def _session(self, sb: FakeSandbox, request: web.Request) -> FakeSession:
        session = sb.sessions.get(request.match_info["session"])
        if session is None:
            raise _HttpError(404, "session not found", "NOT_FOUND")
        return session

    @staticmethod
    def _command_dto(cmd: FakeCommand) -> dict[str, Any]:
        return {"id": cmd.id, "command": cmd.command, "exitCode": cmd.exit_code}

    async def _t_create_session(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        body = await _json_body(request)
        session_id = body.get("sessionId")
        if not isinstance(session_id, str) or not session_id:
            raise _HttpError(400, "sessionId is required", "INVALID_REQUEST_BODY")
        if session_id in sb.sessions:
            raise _HttpError(409, "session already exists", "CONFLICT")
        sb.sessions[session_id] = FakeSession(id=session_id, cwd=sb.home, env={})
        (sb.meta_dir / "sessions" / session_id).mkdir(parents=True, exist_ok=True)
        return web.Response(status=201)

    async def _t_list_sessions(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        return web.json_response(
            [
                {"sessionId": s.id, "commands": [self._command_dto(c) for c in s.commands.values()]}
                for s in sb.sessions.values()
            ]
        )

    async def _t_get_session(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        s = self._session(sb, request)
        return web.json_response(
            {"sessionId": s.id, "commands": [self._command_dto(c) for c in s.commands.values()]}
        )

    async def _t_delete_session(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        session = self._session(sb, request)
        procs = [c.proc for c in session.commands.values() if c.proc is not None]
        await self._terminate(lambda _v: False, procs)
        for cmd in session.commands.values():
            if cmd.exit_code is None:
                cmd.exit_code = 143
        sb.sessions.pop(session.id, None)
        return web.Response(status=204)

    async def _pump(
        self,
        stream: asyncio.StreamReader | None,
        cmd: FakeCommand,
        kind: Literal["stdout", "stderr"],
    ) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            cmd.chunks.append((kind, chunk))

    def _state_files(self, sb: FakeSandbox, session: FakeSession, cmd: FakeCommand) -> list[Path]:
        state_dir = sb.meta_dir / "sessions" / session.id
        return [state_dir / f"{cmd.id}.cwd", state_dir / f"{cmd.id}.env"]

    async def _start_session_command(
        self, sb: FakeSandbox, session: FakeSession, cmd: FakeCommand, cwd: Path
    ) -> asyncio.subprocess.Process:
        script = self._script(sb, cmd.command)
        if not cmd.run_async:
            cwd_file, env_file = self._state_files(sb, session, cmd)
            script = (
                f"{script}\n__fake_daytona_ec=$?\n"
                f"pwd > {_shq(str(cwd_file))} 2>/dev/null\n"
                f"env -0 > {_shq(str(env_file))} 2>/dev/null\n"
                "exit $__fake_daytona_ec\n"
            )
        env = self._env(sb, session.env, None)
        proc = await self._spawn(sb, script, cwd, env, stdin=cmd.run_async, combined=False)
        cmd.proc = proc
        return proc

    async def _finish_session_command(
        self,
        sb: FakeSandbox,
        session: FakeSession,
        cmd: FakeCommand,
        proc: asyncio.subprocess.Process,
    ) -> None:
        pumps = asyncio.gather(
            self._pump(proc.stdout, cmd, "stdout"), self._pump(proc.stderr, cmd, "stderr")
        )
        returncode = await proc.wait()
        # Let normal output drain; background children may keep the pipes open for longer.
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(pumps), 0.5)
        if not pumps.done():
            self._spawn_task(_await_quietly(pumps))
        if cmd.exit_code is None:
            cmd.exit_code = _exit_code(returncode)
        sb.processes.discard(proc)  # stray background children are found via the env marker
        if not cmd.run_async:
            self._capture_shell_state(sb, session, *self._state_files(sb, session, cmd))

    def _capture_shell_state(
        self, sb: FakeSandbox, session: FakeSession, cwd_file: Path, env_file: Path
    ) -> None:
        """Carry a finished sync command's final cwd and exported env into its session."""
        with contextlib.suppress(OSError, ValueError):
            new_cwd = Path(cwd_file.read_text().strip())
            new_cwd.relative_to(sb.root)  # refuse to leave the fake root
            if new_cwd.is_dir():
                session.cwd = new_cwd
        with contextlib.suppress(OSError):
            captured = _parse_env0(env_file.read_bytes())
            base = self._env(sb, None, None)
            session.env = {
                k: v for k, v in captured.items() if k not in _SHELL_STATE_VARS and base.get(k) != v
            }

    async def _t_session_exec(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        session = self._session(sb, request)
        body = await _json_body(request)
        command = body.get("command")
        if not isinstance(command, str) or not command.strip():
            raise _HttpError(400, "command cannot be empty", "INVALID_REQUEST_BODY")
        run_async = bool(body.get("runAsync") or body.get("async"))
        cmd = FakeCommand(id=str(uuid.uuid4()), command=command, run_async=run_async)
        session.commands[cmd.id] = cmd
        cwd = session.cwd if session.cwd.is_dir() else sb.home
        if run_async:
            proc = await self._start_session_command(sb, session, cmd, cwd)
            self._spawn_task(self._finish_session_command(sb, session, cmd, proc))
            return web.json_response({"cmdId": cmd.id}, status=202)
        proc = await self._start_session_command(sb, session, cmd, cwd)
        await self._finish_session_command(sb, session, cmd, proc)
        return web.json_response(
            {
                "cmdId": cmd.id,
                "output": self._out(sb, cmd.text("output")),
                "stdout": self._out(sb, cmd.text("stdout")),
                "stderr": self._out(sb, cmd.text("stderr")),
                "exitCode": cmd.exit_code,
            }
        )

    def _command(self, session: FakeSession, request: web.Request) -> FakeCommand:
        cmd = session.commands.get(request.match_info["cmd"])
        if cmd is None:
            raise _HttpError(404, "command not found", "NOT_FOUND")
        return cmd

    async def _t_get_command(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        cmd = self._command(self._session(sb, request), request)
        return web.json_response(self._command_dto(cmd))

    async def _t_command_logs(self, request: web.Request) -> web.StreamResponse:
        sb = self._toolbox_sb(request)
        cmd = self._command(self._session(sb, request), request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            follow = request.query.get("follow", "false").lower() == "true"
            return await self._stream_logs(request, sb, cmd, follow)
        return web.json_response(
            {
                "output": self._out(sb, cmd.text("output")),
                "stdout": self._out(sb, cmd.text("stdout")),
                "stderr": self._out(sb, cmd.text("stderr")),
            }
        )

    async def _stream_logs(
        self, request: web.Request, sb: FakeSandbox, cmd: FakeCommand, follow: bool
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._websockets.add(ws)
        sent = 0
        try:
            while not ws.closed:
                while sent < len(cmd.chunks):
                    kind, chunk = cmd.chunks[sent]
                    sent += 1
                    prefix = STDOUT_PREFIX if kind == "stdout" else STDERR_PREFIX
                    text = self._out(sb, chunk.decode("utf-8", errors="replace")).encode()
                    await ws.send_bytes(prefix + text)
                if not follow or (cmd.exit_code is not None and sent >= len(cmd.chunks)):
                    break
                await asyncio.sleep(0.05)
            await ws.close(code=aiohttp.WSCloseCode.OK)
        finally:
            self._websockets.discard(ws)
        return ws

    async def _t_command_input(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        cmd = self._command(self._session(sb, request), request)
        body = await _json_body(request)
        if cmd.exit_code is not None:
            raise _HttpError(410, "command already completed", "COMMAND_ALREADY_COMPLETED")
        stdin = cmd.proc.stdin if cmd.proc is not None else None
        if stdin is None:
            raise _HttpError(400, "command does not accept input", "BAD_REQUEST")
        stdin.write(str(body.get("data", "")).encode())
        await stdin.drain()
        return web.Response(status=204)

    # ------------------------------------------------------------------ toolbox: files

    @staticmethod
    def _path_param(request: web.Request, name: str = "path") -> str:
        value = request.query.get(name)
        if value is None:
            raise _HttpError(400, f"{name} is required", "INVALID_FILE_PATH")
        return value

    def _existing(self, sb: FakeSandbox, path: str) -> Path:
        host = sb.host_path(path)
        if not host.exists() and not host.is_symlink():
            raise _HttpError(404, f"file not found: {sb.virtual_path(path)}", "FILE_NOT_FOUND")
        return host

    async def _t_list_files(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        host = self._existing(sb, request.query.get("path") or HOME_DIR)
        if not host.is_dir():
            raise _HttpError(400, f"not a directory: {sb.to_sandbox_path(host)}", "BAD_REQUEST")
        depth = int(request.query.get("depth") or "1")
        entries: list[dict[str, Any]] = []

        def walk(directory: Path, level: int) -> None:
            for child in sorted(directory.iterdir(), key=lambda p: p.name):
                entries.append(_file_info(child, sb.to_sandbox_path(child)))
                if level < depth and child.is_dir() and not child.is_symlink():
                    walk(child, level + 1)

        walk(host, 1)
        return web.json_response(entries)

    async def _t_file_info(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        host = self._existing(sb, self._path_param(request))
        return web.json_response(_file_info(host, sb.to_sandbox_path(host)))

    async def _t_delete_file(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        host = self._existing(sb, self._path_param(request))
        if host == sb.root:
            raise _HttpError(403, "refusing to delete /", "FILE_ACCESS_DENIED")
        recursive = request.query.get("recursive", "false").lower() == "true"
        if host.is_dir() and not host.is_symlink():
            if recursive:
                shutil.rmtree(host)
            else:
                try:
                    host.rmdir()
                except OSError as exc:
                    raise _HttpError(
                        400, f"directory not empty: {sb.to_sandbox_path(host)}", "BAD_REQUEST"
                    ) from exc
        else:
            host.unlink()
        return web.Response(status=204)

    async def _t_create_folder(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        host = sb.host_path(self._path_param(request))
        mode = request.query.get("mode") or "755"
        try:
            host.mkdir(mode=int(mode, 8), parents=True, exist_ok=True)
        except ValueError as exc:
            raise _HttpError(400, f"invalid mode {mode!r}", "BAD_REQUEST") from exc
        return web.Response(status=201)

    async def _t_move(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        source = self._existing(sb, self._path_param(request, "source"))
        dest = sb.host_path(self._path_param(request, "destination"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(dest))
        return web.Response(status=200)

    async def _t_bulk_upload(self, request: web.Request) -> web.Response:
        sb = self._toolbox_sb(request)
        reader = await request.multipart()
        paths: dict[str, str] = {}
        temps: dict[str, tuple[Path, str | None, int]] = {}
        staging = Path(tempfile.mkdtemp(prefix="upload-", dir=sb.meta_dir))
        try:
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, aiohttp.BodyPartReader):
                    continue
                name = part.name or ""
                match = re.fullmatch(r"files\[(\d+)\]\.(path|file)", name)
                if match is None:
                    await part.release()
                    continue
                index, what = match.groups()
                if what == "path":
                    paths[index] = (await part.read()).decode()
                    continue
                tmp = staging / f"{index}.bin"
                size = 0
                with tmp.open("wb") as fh:
                    while chunk := await part.read_chunk(1 << 20):
                        fh.write(chunk)
                        size += len(chunk)
                temps[index] = (tmp, part.filename, size)
            results: list[dict[str, Any]] = []
            errors: list[str] = []
            for index, (tmp, filename, size) in sorted(temps.items(), key=lambda kv: int(kv[0])):
                destination = paths.get(index) or filename
                if not destination:
                    errors.append(f"files[{index}]: missing destination path")
                    continue
                dest = sb.host_path(destination)
                if dest.is_dir():
                    errors.append(f"{destination}: is a directory")
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(tmp), str(dest))
                results.append({"path": sb.to_sandbox_path(dest), "bytes": size})
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        record = request.get(_RECORD_KEY)
        if record is not None:
            record.form = {"paths": [r["path"] for r in results]}
        status = 400 if errors and not results else 200
        return web.json_response({"files": results, "errors": errors}, status=status)

    async def _t_bulk_download(self, request: web.Request) -> web.StreamResponse:
        sb = self._toolbox_sb(request)
        body = await _json_body(request)
        paths = [str(p) for p in body.get("paths") or []]
        boundary = "fakedaytona" + secrets.token_hex(12)
        response = web.StreamResponse(
            status=200, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        await response.prepare(request)
        for path in paths:
            host = sb.host_path(path)
            if host.is_file():
                head = (
                    f"--{boundary}\r\n"
                    f"Content-Disposition: {_content_disposition('file', path)}\r\n"
                    "Content-Type: application/octet-stream\r\n"
                    f"Content-Length: {host.stat().st_size}\r\n\r\n"
                )
                await response.write(head.encode())
                with host.open("rb") as fh:
                    while chunk := fh.read(1 << 20):
                        await response.write(chunk)
                await response.write(b"\r\n")
            else:
                status, code, what = (
                    (400, "BAD_REQUEST", "path is a directory")
                    if host.is_dir()
                    else (404, "FILE_NOT_FOUND", "file not found")
                )
                error = json.dumps(
                    {
                        "message": f"{what}: {sb.virtual_path(path)}",
                        "statusCode": status,
                        "code": code,
                        "source": "DAYTONA_DAEMON",
                    }
                ).encode()
                head = (
                    f"--{boundary}\r\n"
                    f"Content-Disposition: {_content_disposition('error', path)}\r\n"
                    "Content-Type: application/json\r\n\r\n"
                )
                await response.write(head.encode() + error + b"\r\n")
        await response.write(f"--{boundary}--\r\n".encode())
        await response.write_eof()
        return response

    async def _t_download(self, request: web.Request) -> web.StreamResponse:
        sb = self._toolbox_sb(request)
        host = self._existing(sb, self._path_param(request))
        if not host.is_file():
            raise _HttpError(400, "path is a directory", "BAD_REQUEST")
        return web.FileResponse(host, headers={"Content-Type": "application/octet-stream"})

    # ------------------------------------------------------------------ preview proxy

    async def _h_preview_path(self, request: web.Request) -> web.StreamResponse:
        sid, port = request.match_info["sid"], request.match_info["port"]
        return await self._preview(request, sid, int(port), f"/preview/{sid}/{port}")

    async def _h_preview_signed_path(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        return await self._preview(request, token, None, f"/preview-signed/{token}")

    async def _preview(
        self, request: web.Request, key: str, port: int | None, prefix: str
    ) -> web.StreamResponse:
        """Serve a preview request; ``prefix`` is the URL path part that names the preview."""
        if self._shows_warning(request):
            return _warning_page(request)
        sb = self.sandboxes.get(key)
        signed = False
        if sb is None:
            entry = self._signed.get(key)
            live = entry is not None and (entry[2] is None or entry[2] > time.time())
            if entry is not None and live and port in (None, entry[1]):
                sb, port, signed = self.sandboxes.get(entry[0]), entry[1], True
        if sb is None or port is None:
            return web.Response(status=404, text="Sandbox not found\n")
        query_token = request.query.get("token")
        presented = {
            request.headers.get("x-daytona-preview-token"),
            query_token,
            request.cookies.get(_PREVIEW_COOKIE),
        }
        authorized = (
            sb.public
            or signed
            or sb.preview_token in presented
            or request.headers.get("Authorization") == f"Bearer {self.api_key}"
        )
        if not authorized:
            return web.json_response(
                {"statusCode": 401, "message": "Unauthorized", "error": "Unauthorized"}, status=401
            )
        if sb.state != "started":
            return web.Response(status=502, text=f"Sandbox {sb.id} is {sb.state}\n")
        raw_path = request.raw_path.partition("?")[0]
        tail = raw_path[len(prefix) :] if raw_path.startswith(prefix) else raw_path
        if not tail.startswith("/"):
            tail = "/" + tail
        kept = [
            pair
            for pair in request.query_string.split("&")
            if pair and _query_pair(pair) != ("token", sb.preview_token)
        ]
        target = f"http://127.0.0.1:{port}{tail}" + (f"?{'&'.join(kept)}" if kept else "")
        upstream = URL(target, encoded=True)
        headers = self._forward_headers(request, port)
        cookie = None
        if query_token == sb.preview_token:
            cookie = (query_token, prefix or "/")
        try:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await self._proxy_ws(request, upstream, headers)
            return await self._proxy_http(request, upstream, headers, cookie)
        except aiohttp.ClientError as exc:
            return web.Response(status=502, text=f"Upstream 127.0.0.1:{port} unavailable: {exc}\n")

    def _shows_warning(self, request: web.Request) -> bool:
        user_agent = request.headers.get("User-Agent", "")
        return (
            self.preview_warning
            and request.headers.get(SKIP_WARNING_HEADER) != "true"
            and _BROWSER_UA_RE.search(user_agent) is not None
            and "HeadlessChrome" not in user_agent
            and request.headers.get("Upgrade", "").lower() != "websocket"
            and request.cookies.get(WARNING_ACCEPTED_COOKIE) != "true"
        )

    @staticmethod
    def _accept_warning(request: web.Request) -> web.Response:
        response = web.HTTPFound(request.query.get("redirect") or "/")
        response.set_cookie(WARNING_ACCEPTED_COOKIE, "true", max_age=86400, httponly=True)
        return response

    def _forward_headers(self, request: web.Request, port: int) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        for k, v in request.headers.items():
            lk = k.lower()
            if lk in _HOP_HEADERS or lk in _WS_HANDSHAKE_HEADERS:
                continue
            if lk == "authorization" and v == f"Bearer {self.api_key}":
                continue
            headers.add(k, v)
        headers["Host"] = f"localhost:{port}"
        headers["X-Forwarded-Host"] = request.host
        headers["X-Forwarded-Proto"] = request.scheme
        if request.remote:
            headers["X-Forwarded-For"] = request.remote
        return headers

    async def _proxy_http(
        self,
        request: web.Request,
        upstream: URL,
        headers: CIMultiDict[str],
        cookie: tuple[str, str] | None,
    ) -> web.StreamResponse:
        assert self._client is not None
        data = request.content if request.body_exists else None
        async with self._client.request(
            request.method, upstream, headers=headers, data=data, allow_redirects=False
        ) as up:
            out_headers: CIMultiDict[str] = CIMultiDict()
            for k, v in up.headers.items():
                if k.lower() not in _HOP_HEADERS:
                    out_headers.add(k, v)
            response = web.StreamResponse(status=up.status, reason=up.reason, headers=out_headers)
            if cookie is not None:
                response.set_cookie(_PREVIEW_COOKIE, cookie[0], path=cookie[1], httponly=True)
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in up.content.iter_any():
                    await response.write(chunk)
            await response.write_eof()
            return response

    async def _proxy_ws(
        self, request: web.Request, upstream: URL, headers: CIMultiDict[str]
    ) -> web.StreamResponse:
        assert self._client is not None
        protocols = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        up = await self._client.ws_connect(
            upstream.with_scheme("ws"), headers=headers, protocols=protocols
        )
        ws = web.WebSocketResponse(protocols=[up.protocol] if up.protocol else ())
        await ws.prepare(request)
        self._websockets.add(ws)

        async def client_to_upstream() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await up.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await up.send_bytes(msg.data)
            await up.close()

        async def upstream_to_client() -> None:
            async for msg in up:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
            await ws.close()

        tasks = [
            asyncio.ensure_future(client_to_upstream()),
            asyncio.ensure_future(upstream_to_client()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await up.close()
            await ws.close()
            self._websockets.discard(ws)
        return ws


def _warning_page(request: web.Request) -> web.Response:
    """Daytona's interstitial: a warning and a form that accepts it, never the app."""
    target = f"{request.scheme}://{request.host}{request.path_qs}"
    accept = f"{ACCEPT_WARNING_PATH}?redirect={quote(target, safe='')}"
    body = (
        f"<!doctype html><html><head><title>Daytona Preview - Warning</title></head><body>"
        f"<h1>{WARNING_TITLE}</h1><p>You are about to visit <strong>{target}</strong></p>"
        f'<form action="{accept}" method="POST"><button type="submit">'
        f"I Understand, Continue</button></form></body></html>"
    )
    return web.Response(text=body, content_type="text/html")


_DAEMON_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    410: "GONE",
    422: "UNPROCESSABLE_ENTITY",
}


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class _CwdMissing(Exception):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    raw = await request.read()  # cached by the middleware
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _HttpError(400, "invalid JSON body", "INVALID_REQUEST_BODY") from exc
    if not isinstance(data, dict):
        raise _HttpError(400, "JSON body must be an object", "INVALID_REQUEST_BODY")
    return data


async def _await_quietly(fut: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await fut


def _shq(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _query_pair(pair: str) -> tuple[str, str]:
    key, _, value = pair.partition("=")
    return unquote_plus(key), unquote_plus(value)
