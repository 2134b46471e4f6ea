"""Fake model APIs speaking the real Anthropic Messages and OpenAI Chat Completions wire formats.

No model API is reachable from the test machines, so these servers stand in for them. Each one is
a real HTTP/1.1 server on ``127.0.0.1`` with an ephemeral port; streamed responses use chunked
transfer encoding and are flushed event by event, so the official SDKs (and pydantic-ai on top of
them) run unchanged.

Both servers are driven by the same *script*: a list of `Turn`s (or a callable that builds one from
the request body). Each request that reaches the script consumes one turn::

    script = [
        Turn([Text("Let me look."), ToolCall("read_file", {"path": "a.html"})], input_tokens=120),
        Turn(["Done."], input_tokens=200, output_tokens=8, cache_read_tokens=100),
    ]
    with FakeAnthropic(script) as fake:
        client = AsyncAnthropic(base_url=fake.url, api_key=fake.api_key)
        ...
        assert fake.requests[1].json["messages"][-1]["content"][0]["type"] == "tool_result"

Usage semantics: `Turn.input_tokens` is the *total* prompt size, cached tokens included, which is
what pydantic-ai reports as `RequestUsage.input_tokens` on both wires. On the Anthropic wire it is
split the way Anthropic reports it (`input_tokens` excludes `cache_read_input_tokens` and
`cache_creation_input_tokens`); on the OpenAI wire it is `prompt_tokens`, and `cache_read_tokens`
is `prompt_tokens_details.cached_tokens` (`cache_write_tokens` has no OpenAI field).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import secrets
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self, TypeAlias
from urllib.parse import urlsplit

__all__ = [
    "FakeAnthropic",
    "FakeModelServer",
    "FakeOpenAI",
    "Item",
    "RecordedRequest",
    "Script",
    "ScriptFn",
    "Text",
    "ToolCall",
    "Turn",
]

JSON: TypeAlias = dict[str, Any]


# ------------------------------------------------------------------------------------------------
# Script types
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """Text the model says. A plain `str` in `Turn.items` means the same."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model makes.

    `id` defaults to a fresh provider-style id (`toolu_...` / `call_...`).
    """

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


Item: TypeAlias = str | Text | ToolCall


@dataclass(frozen=True)
class Turn:
    """What the model answers to one request, and the usage it reports.

    `input_tokens` is the total prompt size *including* `cache_read_tokens` and
    `cache_write_tokens` (see the module docstring). `stop_reason` overrides the derived one, in
    Anthropic's names: `tool_use` when the turn has a tool call, else `end_turn`. The OpenAI fake
    maps `end_turn`, `tool_use`, `max_tokens` and `stop_sequence` to its `finish_reason`.
    """

    items: Sequence[Item] = ()
    input_tokens: int = 10
    output_tokens: int = 5
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    stop_reason: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.items, str | Text | ToolCall):
            raise TypeError("Turn.items must be a sequence of items, e.g. Turn(['hello'])")
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                "Turn.input_tokens is the total prompt size and must include the cached tokens"
            )

    @property
    def texts(self) -> list[str]:
        return [
            item if isinstance(item, str) else item.text
            for item in self.items
            if not isinstance(item, ToolCall)
        ]

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [item for item in self.items if isinstance(item, ToolCall)]


ScriptFn: TypeAlias = Callable[[JSON], Turn]
Script: TypeAlias = Sequence[Turn] | ScriptFn


@dataclass
class RecordedRequest:
    """One request the server received (auth failures and injected failures included)."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names are lower-cased."""
    json: Any
    """The parsed JSON body (`None` when the body was empty or not JSON)."""
    status: int = 0
    """The status the fake answered with (200 for a stream that was later cut)."""
    turn: Turn | None = None
    """The scripted turn this request consumed, if it reached the script."""
    cut: bool = False
    """Whether the response was dropped mid-way by `cut_stream_after`."""

    @property
    def stream(self) -> bool:
        return isinstance(self.json, dict) and bool(self.json.get("stream"))


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: float | str | None
    body: Any


class _Cut(Exception):
    """Raised inside a handler to drop the connection mid-response."""


# ------------------------------------------------------------------------------------------------
# HTTP plumbing
# ------------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, fake: FakeModelServer) -> None:
        self.fake = fake
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handler_threads: list[threading.Thread] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{type(self.fake).__name__}-conn",
            daemon=True,
        )
        with self._conn_lock:
            self._connections.add(request)
            self._handler_threads = [t for t in self._handler_threads if t.is_alive()]
            self._handler_threads.append(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client dropping its keep-alive connection (or stop() dropping it) is not an error.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_everything(self, timeout: float) -> None:
        with self._conn_lock:
            connections = list(self._connections)
            threads = list(self._handler_threads)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.server_close()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sandforge-fake/1.0"
    sys_version = ""
    timeout = 60
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    # -- response helpers used by the fakes --------------------------------------------------------

    def read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = (
            body
            if isinstance(body, bytes)
            else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        )
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def send_truncated_json(self, body: Any, headers: Mapping[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.drop_connection()

    def start_sse(self, headers: Mapping[str, str]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()

    def send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def drop_connection(self) -> None:
        """Close the socket without finishing the response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


# ------------------------------------------------------------------------------------------------
# Shared server behaviour
# ------------------------------------------------------------------------------------------------


def _split(s: str, size: int, min_pieces: int = 1) -> list[str]:
    """Split `s` into pieces of at most `size` chars, and at least `min_pieces` if long enough."""
    if not s:
        return []
    size = max(1, min(size, math.ceil(len(s) / min_pieces)))
    return [s[i : i + size] for i in range(0, len(s), size)]


class FakeModelServer:
    """Base of `FakeAnthropic` and `FakeOpenAI`: script, recording, failure knobs, lifecycle.

    Args:
        script: the turns to answer with, in order, or a callable `(request_json) -> Turn`.
        api_key: the only key the server accepts; anything else gets the provider's real 401.
        chunk_size: the most characters in one text delta or one tool-arguments delta (arguments
            are also split into at least three deltas when long enough).
        event_delay: seconds to sleep before each streamed event, e.g. to keep a stream open
            while a test cancels.
    """

    provider: ClassVar[str]
    _tool_id_prefix: ClassVar[str]

    def __init__(
        self,
        script: Script = (),
        *,
        api_key: str = "sk-fake-test-key",
        chunk_size: int = 8,
        event_delay: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.chunk_size = chunk_size
        self.event_delay = event_delay
        self.errors: list[str] = []
        """Problems the fake found (script exhausted, script callable raised, unknown route...)."""
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._failures: deque[_Failure] = deque()
        self._fail_always: _Failure | None = None
        self._cut_after: int | None = None
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._script_fn: ScriptFn | None = None
        self._turns: deque[Turn] = deque()
        self.set_script(script)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._stopping.clear()
        self._server = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-serve",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, drop open connections, free the port and join every thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        thread.join(timeout)
        server.close_everything(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        """`http://127.0.0.1:<port>`, without a path."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL to hand the provider's SDK."""
        raise NotImplementedError

    # -- script ------------------------------------------------------------------------------------

    def set_script(self, script: Script) -> None:
        """Replace the script: a sequence of turns, or a callable `(request_json) -> Turn`."""
        with self._lock:
            if callable(script):
                self._script_fn = script
                self._turns = deque()
            else:
                self._script_fn = None
                self._turns = deque(script)

    def add_turns(self, *turns: Turn) -> None:
        """Append turns to a sequence script."""
        with self._lock:
            if self._script_fn is not None:
                raise RuntimeError("the script is a callable; use set_script() to replace it")
            self._turns.extend(turns)

    @property
    def remaining_turns(self) -> int:
        """Scripted turns not consumed yet (0 for a callable script)."""
        with self._lock:
            return len(self._turns)

    # -- recording ---------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def model_requests(self) -> list[RecordedRequest]:
        """The requests that were answered from the script (status 200), in order."""
        return [r for r in self.requests if r.turn is not None]

    # -- failure knobs -----------------------------------------------------------------------------

    def fail_next(
        self, status: int, times: int = 1, retry_after: float | str | None = None, body: Any = None
    ) -> None:
        """Answer the next `times` requests with `status`, without consuming turns.

        `retry_after` is sent as the `retry-after` header (seconds; the SDKs honour fractions).
        `body` defaults to the provider's real error JSON for that status; a dict is sent as JSON,
        a str or bytes as is.
        """
        with self._lock:
            self._failures.extend(_Failure(status, retry_after, body) for _ in range(times))

    def fail_always(
        self, status: int, retry_after: float | str | None = None, body: Any = None
    ) -> None:
        """Answer every request with `status` until `clear_failures()`."""
        with self._lock:
            self._fail_always = _Failure(status, retry_after, body)

    def cut_stream_after(self, n_events: int) -> None:
        """Drop the next scripted response's connection after `n_events` SSE events.

        Pings and `[DONE]` count as events. The chunked body is left unfinished, which the client
        sees as a peer that closed mid-message. The request still consumes its turn. A
        non-streaming response is cut halfway through its JSON body instead.
        """
        with self._lock:
            self._cut_after = n_events

    def clear_failures(self) -> None:
        """Forget pending `fail_next`, `fail_always` and `cut_stream_after`."""
        with self._lock:
            self._failures.clear()
            self._fail_always = None
            self._cut_after = None

    # -- request handling --------------------------------------------------------------------------

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _tool_id(self, call: ToolCall) -> str:
        return call.id or f"{self._tool_id_prefix}{self._next_id():04d}{secrets.token_hex(6)}"

    def _handle(self, h: _Handler) -> None:
        raw = h.read_body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = urlsplit(h.path).path
        record = RecordedRequest(
            method=h.command,
            path=path,
            headers={k.lower(): v for k, v in h.headers.items()},
            json=body,
        )
        with self._lock:
            self._requests.append(record)
        try:
            self._dispatch(h, record)
        except _Cut:
            record.cut = True
            h.drop_connection()
        except OSError:
            h.close_connection = True

    def _dispatch(self, h: _Handler, record: RecordedRequest) -> None:
        if not self._authorized(record.headers):
            self._send_error(h, record, 401, None)
            return
        route = self._route(record.method, record.path)
        if route is None:
            self._note_error(f"unknown route {record.method} {record.path}")
            self._send_error(h, record, 404, None)
            return
        if route == "count_tokens":
            record.status = 200
            h.send_json(200, self._count_tokens(record.json))
            return
        if not isinstance(record.json, dict):
            self._send_error(h, record, 400, None, message="The request body is not valid JSON.")
            return
        with self._lock:
            failure = self._fail_always or (self._failures.popleft() if self._failures else None)
        if failure is not None:
            self._send_error(h, record, failure.status, failure)
            return
        turn = self._next_turn(record.json)
        if isinstance(turn, str):
            self._send_error(h, record, 400, None, message=turn)
            return
        record.turn = turn
        record.status = 200
        with self._lock:
            cut_after, self._cut_after = self._cut_after, None
        if record.stream:
            self._send_stream(h, record.json, turn, cut_after)
        else:
            self._send_complete(h, record, turn, cut_after)

    def _send_stream(self, h: _Handler, body: JSON, turn: Turn, cut_after: int | None) -> None:
        model = str(body.get("model", "fake-model"))
        events = self._stream_events(turn, model, body)
        h.start_sse(self._response_headers())
        for sent, event in enumerate(events):
            if cut_after is not None and sent >= cut_after:
                raise _Cut
            if self.event_delay and self._stopping.wait(self.event_delay):
                raise _Cut
            h.send_chunk(event)
        if cut_after is not None and cut_after >= len(events):
            raise _Cut
        h.end_chunks()

    def _send_complete(
        self, h: _Handler, record: RecordedRequest, turn: Turn, cut_after: int | None
    ) -> None:
        assert isinstance(record.json, dict)
        model = str(record.json.get("model", "fake-model"))
        message = self._complete_response(turn, model, record.json)
        if cut_after is not None:
            record.cut = True
            h.send_truncated_json(message, self._response_headers())
            return
        h.send_json(200, message, self._response_headers())

    def _next_turn(self, body: JSON) -> Turn | str:
        """The next turn, or an error message for the client."""
        with self._lock:
            script_fn = self._script_fn
            turn = None if script_fn is not None or not self._turns else self._turns.popleft()
            n = len(self._requests)
        if script_fn is not None:
            try:
                turn = script_fn(body)
            except Exception as e:  # reported to the client and in .errors
                return self._note_error(
                    f"the script callable raised {type(e).__name__}: {e} (request #{n})"
                )
            if not isinstance(turn, Turn):
                return self._note_error(
                    f"the script callable returned {turn!r}, not a Turn (request #{n})"
                )
        if turn is None:
            return self._note_error(f"the script is exhausted (request #{n})")
        return turn

    def _note_error(self, message: str) -> str:
        message = f"{type(self).__name__}: {message}"
        with self._lock:
            self.errors.append(message)
        return message

    def _send_error(
        self,
        h: _Handler,
        record: RecordedRequest,
        status: int,
        failure: _Failure | None,
        message: str | None = None,
    ) -> None:
        record.status = status
        headers = self._response_headers()
        if failure is not None and failure.retry_after is not None:
            headers["retry-after"] = str(failure.retry_after)
        body = (
            failure.body
            if failure is not None and failure.body is not None
            else self._error_body(status, message)
        )
        h.send_json(status, body, headers)

    # -- provider specifics ------------------------------------------------------------------------

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        raise NotImplementedError

    def _route(self, method: str, path: str) -> str | None:
        raise NotImplementedError

    def _response_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _error_body(self, status: int, message: str | None) -> JSON:
        raise NotImplementedError

    def _stream_events(self, turn: Turn, model: str, body: JSON) -> list[bytes]:
        raise NotImplementedError

    def _complete_response(self, turn: Turn, model: str, body: JSON) -> JSON:
        raise NotImplementedError

    def _count_tokens(self, body: Any) -> JSON:
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------
# Anthropic
# ------------------------------------------------------------------------------------------------

_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed your organization's rate limit. Please try again later.",
    ),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


class FakeAnthropic(FakeModelServer):
    """Fake Anthropic Messages API: `POST /v1/messages` (streaming or not) and `count_tokens`.

    Hand the SDK `base_url=fake.url` (the server root, `http://127.0.0.1:<port>`). pydantic-ai calls
    `/v1/messages?beta=true` (the beta client); the query string is ignored.
    """

    provider = "anthropic"
    _tool_id_prefix = "toolu_fake"

    @property
    def url(self) -> str:
        return self.root_url

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        # The API takes the key as `x-api-key` or as a bearer token; anthropic>=2 sends the latter.
        if "x-api-key" in headers:
            return headers["x-api-key"] == self.api_key
        return headers.get("authorization") == f"Bearer {self.api_key}"

    def _route(self, method: str, path: str) -> str | None:
        if method != "POST":
            return None
        return {"/v1/messages": "messages", "/v1/messages/count_tokens": "count_tokens"}.get(
            path.rstrip("/")
        )

    def _response_headers(self) -> dict[str, str]:
        return {
            "request-id": f"req_fake{secrets.token_hex(8)}",
            "anthropic-organization-id": "fake-org",
        }

    def _error_body(self, status: int, message: str | None) -> JSON:
        kind, default = _ANTHROPIC_ERRORS.get(status, ("api_error", "Internal server error"))
        return {
            "type": "error",
            "error": {"type": kind, "message": message or default},
            "request_id": f"req_fake{secrets.token_hex(8)}",
        }

    def _count_tokens(self, body: Any) -> JSON:
        return {"input_tokens": len(json.dumps(body)) // 4 if body else 0}

    @staticmethod
    def _usage(turn: Turn, output_tokens: int) -> JSON:
        return {
            "input_tokens": turn.input_tokens - turn.cache_read_tokens - turn.cache_write_tokens,
            "cache_creation_input_tokens": turn.cache_write_tokens,
            "cache_read_input_tokens": turn.cache_read_tokens,
            "output_tokens": output_tokens,
        }

    @staticmethod
    def _stop_reason(turn: Turn) -> str:
        return turn.stop_reason or ("tool_use" if turn.tool_calls else "end_turn")

    def _blocks(self, turn: Turn) -> list[JSON]:
        blocks: list[JSON] = []
        for item in turn.items:
            if isinstance(item, ToolCall):
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": self._tool_id(item),
                        "name": item.name,
                        "input": dict(item.args),
                    }
                )
            else:
                blocks.append(
                    {"type": "text", "text": item if isinstance(item, str) else item.text}
                )
        return blocks

    def _message_id(self) -> str:
        return f"msg_fake{self._next_id():04d}{secrets.token_hex(8)}"

    def _complete_response(self, turn: Turn, model: str, body: JSON) -> JSON:
        return {
            "id": self._message_id(),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": self._blocks(turn),
            "stop_reason": self._stop_reason(turn),
            "stop_sequence": None,
            "usage": {**self._usage(turn, turn.output_tokens), "service_tier": "standard"},
        }

    def _stream_events(self, turn: Turn, model: str, body: JSON) -> list[bytes]:
        events: list[bytes] = []

        def emit(kind: str, data: JSON) -> None:
            events.append(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())

        emit(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self._message_id(),
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {**self._usage(turn, 1), "service_tier": "standard"},
                },
            },
        )
        blocks = self._blocks(turn)
        if not blocks:
            emit("ping", {"type": "ping"})
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                emit(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                if index == 0:
                    emit("ping", {"type": "ping"})
                for piece in _split(block["text"], self.chunk_size):
                    emit(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": piece},
                        },
                    )
            else:
                start = {**block, "input": {}}
                emit(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
                if index == 0:
                    emit("ping", {"type": "ping"})
                pieces = ["", *_split(json.dumps(block["input"]), self.chunk_size, min_pieces=3)]
                for piece in pieces:
                    emit(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
            emit("content_block_stop", {"type": "content_block_stop", "index": index})
        emit(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": self._stop_reason(turn), "stop_sequence": None},
                "usage": self._usage(turn, turn.output_tokens),
            },
        )
        emit("message_stop", {"type": "message_stop"})
        return events


# ------------------------------------------------------------------------------------------------
# OpenAI
# ------------------------------------------------------------------------------------------------

_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: ("invalid_request_error", "unknown_url", "Unknown request URL."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again in 1s.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}

_OPENAI_FINISH_REASONS = {
    "end_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "stop_sequence": "stop",
}


class FakeOpenAI(FakeModelServer):
    """Fake OpenAI Chat Completions API: `POST /v1/chat/completions`, streaming and not.

    Hand the SDK `base_url=fake.url`, which ends in `/v1` (`http://127.0.0.1:<port>/v1`). Several
    text items in one turn are streamed as consecutive content deltas of the one message.
    """

    provider = "openai"
    _tool_id_prefix = "call_fake"

    @property
    def url(self) -> str:
        return f"{self.root_url}/v1"

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {self.api_key}"

    def _route(self, method: str, path: str) -> str | None:
        if method == "POST" and path.rstrip("/") == "/v1/chat/completions":
            return "chat"
        return None

    def _response_headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_fake{secrets.token_hex(8)}", "openai-processing-ms": "1"}

    def _error_body(self, status: int, message: str | None) -> JSON:
        kind, code, default = _OPENAI_ERRORS.get(
            status, ("server_error", None, "Internal server error")
        )
        return {"error": {"message": message or default, "type": kind, "param": None, "code": code}}

    def _count_tokens(self, body: Any) -> JSON:
        raise AssertionError("OpenAI has no count_tokens route")

    @staticmethod
    def _usage(turn: Turn) -> JSON:
        return {
            "prompt_tokens": turn.input_tokens,
            "completion_tokens": turn.output_tokens,
            "total_tokens": turn.input_tokens + turn.output_tokens,
            "prompt_tokens_details": {"cached_tokens": turn.cache_read_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _finish_reason(turn: Turn) -> str:
        if turn.stop_reason is None:
            return "tool_calls" if turn.tool_calls else "stop"
        return _OPENAI_FINISH_REASONS.get(turn.stop_reason, turn.stop_reason)

    def _completion_id(self) -> str:
        return f"chatcmpl-fake{self._next_id():04d}{secrets.token_hex(8)}"

    def _complete_response(self, turn: Turn, model: str, body: JSON) -> JSON:
        message: JSON = {
            "role": "assistant",
            "content": "".join(turn.texts) if turn.texts else None,
            "refusal": None,
            "annotations": [],
        }
        if turn.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self._tool_id(call),
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(dict(call.args))},
                }
                for call in turn.tool_calls
            ]
        return {
            "id": self._completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finish_reason(turn),
                }
            ],
            "usage": self._usage(turn),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def _stream_events(self, turn: Turn, model: str, body: JSON) -> list[bytes]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        completion_id = self._completion_id()
        created = int(time.time())
        events: list[bytes] = []

        def chunk(choices: list[JSON], usage: JSON | None = None) -> None:
            data: JSON = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if include_usage:
                data["usage"] = usage
            events.append(f"data: {json.dumps(data)}\n\n".encode())

        def delta(d: JSON, finish_reason: str | None = None) -> None:
            chunk([{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish_reason}])

        delta({"role": "assistant", "content": "", "refusal": None})
        tool_index = 0
        for item in turn.items:
            if isinstance(item, ToolCall):
                head = {"index": tool_index, "id": self._tool_id(item), "type": "function"}
                delta({"tool_calls": [{**head, "function": {"name": item.name, "arguments": ""}}]})
                for piece in _split(json.dumps(dict(item.args)), self.chunk_size, min_pieces=3):
                    delta({"tool_calls": [{"index": tool_index, "function": {"arguments": piece}}]})
                tool_index += 1
            else:
                for piece in _split(item if isinstance(item, str) else item.text, self.chunk_size):
                    delta({"content": piece})
        delta({}, self._finish_reason(turn))
        if include_usage:
            chunk([], self._usage(turn))
        events.append(b"data: [DONE]\n\n")
        return events
