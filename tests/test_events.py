"""The wire contract: the seed's five event types, exactly, and the SSE framing."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from sandforge.events import (
    PROGRESS_ORDER,
    CompleteData,
    CompleteEvent,
    encode_sse,
    error,
    from_json,
    progress,
    to_json,
)


def test_progress_statuses_are_the_seeds_in_order() -> None:
    assert PROGRESS_ORDER == (
        "creating",
        "initializing",
        "generating",
        "writing",
        "starting",
        "preview",
        "complete",
    )


def test_unset_optional_fields_are_left_out() -> None:
    assert json.loads(to_json(progress("creating", "Creating sandbox..."))) == {
        "type": "progress",
        "data": {"status": "creating", "message": "Creating sandbox..."},
    }


def test_sse_frame_has_id_and_data_lines() -> None:
    frame = encode_sse(7, error("boom")).decode()
    assert frame == 'id: 7\ndata: {"type":"error","data":{"message":"boom"}}\n\n'


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"progress","data":{"status":"compiling","message":"x"}}',
        '{"type":"tool","data":{"action":"chmod","file":"a"}}',
        '{"type":"message","data":{"type":"user","content":"x","delta":true}}',
        '{"type":"complete","data":{"success":true}}',
        '{"type":"telemetry","data":{}}',
        '{"type":"error","data":{"message":"x","surprise":1}}',
    ],
)
def test_events_outside_the_contract_are_rejected(raw: str) -> None:
    with pytest.raises(ValidationError):
        from_json(raw)


def test_complete_round_trips_with_extensions() -> None:
    event = CompleteEvent(
        data=CompleteData(
            success=True,
            sandboxId="sb1",
            projectDir="/workspace",
            previewUrl="http://3000-sb1.localhost:8000/",
            accessToken="t",
            tokensUsed=12,
            message="live",
            runId="run1",
        )
    )
    assert from_json(to_json(event)) == event
