"""The page's SSE parser (static/js/sse.js), run in Chromium on awkward but valid streams."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from .conftest import Server

PARSE = """async (chunks) => {
  const { SSEParser } = await import('/static/js/sse.js');
  const events = [];
  const retries = [];
  const parser = new SSEParser((e) => events.push(e), (ms) => retries.push(ms));
  for (const chunk of chunks) parser.push(chunk);
  return { events, retries };
}"""

READ = """async (text) => {
  const { readSSE } = await import('/static/js/sse.js');
  const bytes = new TextEncoder().encode(text);
  // Deliver it one byte at a time, splitting multi-byte characters.
  const body = new ReadableStream({
    start(controller) {
      for (const b of bytes) controller.enqueue(new Uint8Array([b]));
      controller.close();
    },
  });
  const out = [];
  for await (const e of readSSE(new Response(body))) out.push(e);
  return out;
}"""


def parse(page: Page, chunks: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(PARSE, chunks)
    return result


@pytest.fixture
def blank(offline_server: Server, page: Page) -> Page:
    page.goto(f"{offline_server.base_url}/sandboxes")
    return page


def test_frames_comments_and_multiline_data(blank: Page) -> None:
    out = parse(
        blank,
        [
            '\ufeff: keep-alive\n\nid: 1\ndata: {"a":1}\n\n',
            "id: 2\ndata: line one\ndata:line two\ndata\n\n",
            "event: custom\ndata: x\n\n",
        ],
    )
    assert out["events"] == [
        {"id": "1", "event": "message", "data": '{"a":1}'},
        {"id": "2", "event": "message", "data": "line one\nline two\n"},
        {"id": "2", "event": "custom", "data": "x"},
    ]


def test_line_endings_split_across_chunks(blank: Page) -> None:
    out = parse(blank, ["id: 7\r", "\ndata: a\r", "\n\r", "\nid: 8\rdata: b\r\r", "data: c\n"])
    assert out["events"] == [
        {"id": "7", "event": "message", "data": "a"},
        {"id": "8", "event": "message", "data": "b"},
    ]  # "c" never got its blank line: discarded


def test_id_without_data_retry_and_unknown_fields(blank: Page) -> None:
    out = parse(
        blank, ["id: 5\n\n", "retry: 2500\nfoo: bar\ndata: z\n\n", "id: 9\u0000x\ndata: q\n\n"]
    )
    assert out["retries"] == [2500]
    # The id persists to the next event; an id containing NUL is ignored.
    assert out["events"] == [
        {"id": "5", "event": "message", "data": "z"},
        {"id": "5", "event": "message", "data": "q"},
    ]


def test_read_stream_byte_by_byte(blank: Page) -> None:
    text = 'id: 1\ndata: {"msg":"héllo ✓"}\n\n: ping\n\nid: 2\ndata: done\n\n'
    events = blank.evaluate(READ, text)
    assert [e["data"] for e in events] == ['{"msg":"héllo ✓"}', "done"]
    assert [e["id"] for e in events] == ["1", "2"]
