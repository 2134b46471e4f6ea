"""The repair loop: what the rendered check and the build find goes back to the model."""

from __future__ import annotations

from typing import Any

import pytest

from sandforge.events import CompleteEvent, Event
from sandforge.render import find_chromium
from tests.conftest import LiveServer

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="chromium is not installed (scripts/bootstrap installs it)"
)
SCRIPTED = "factory:tests.scripted.scripted_models:"


async def build(server: LiveServer, project_type: str = "web-app") -> tuple[list[Event], Any]:
    body = {"messages": [{"role": "user", "content": "Create a calculator"}]}
    events = [
        e
        for _, e in await server.stream(
            "/api/agent/stream-daytona", {**body, "projectType": project_type}
        )
    ]
    complete = events[-1]
    assert isinstance(complete, CompleteEvent), complete
    return events, complete.data


def fixing_messages(events: list[Event]) -> list[str]:
    return [
        e.data.message
        for e in events
        if e.type == "progress" and e.data.status == "generating" and "Fixing" in e.data.message
    ]


async def test_an_app_that_throws_is_fixed_on_the_first_repair(make_server: Any) -> None:
    server: LiveServer = await make_server(render_check=True, model=SCRIPTED + "fixes_on_repair")
    events, complete = await build(server)
    assert fixing_messages(events) == ["Fixing uncaught exception (attempt 1 of 3)"]
    assert complete.repairs == {"attempts": 1, "fixed": 1, "remaining": []}
    assert complete.render["ok"] and complete.render["problems"] == []
    page = await server.preview_get(complete.projectId, token=complete.accessToken)
    assert "It works" in page.text


async def test_a_model_that_never_fixes_it_stops_at_the_cap_and_says_so(
    make_server: Any,
) -> None:
    server: LiveServer = await make_server(render_check=True, model=SCRIPTED + "never_fixes")
    events, complete = await build(server)
    assert len(fixing_messages(events)) == 3
    assert complete.repairs["attempts"] == 3 and complete.repairs["remaining"]
    assert any("exploded 3" in p for p in complete.repairs["remaining"])
    assert "automatic repair stopped" in complete.message
    assert "SANDFORGE_REPAIR_ATTEMPTS" in complete.message
    assert not complete.render["ok"]


async def test_the_same_error_coming_back_stops_the_loop_early(make_server: Any) -> None:
    server: LiveServer = await make_server(render_check=True, model=SCRIPTED + "repeats_error")
    events, complete = await build(server)
    assert len(fixing_messages(events)) == 1
    assert complete.repairs["attempts"] == 1 and complete.repairs["remaining"]
    assert "the same problems came back unchanged" in complete.message


async def test_repairs_off_reports_the_problems_without_a_repair(make_server: Any) -> None:
    server: LiveServer = await make_server(
        render_check=True, repair_attempts=0, model=SCRIPTED + "fixes_on_repair"
    )
    events, complete = await build(server)
    assert fixing_messages(events) == []
    assert complete.repairs["attempts"] == 0
    assert any("calculator exploded" in p for p in complete.repairs["remaining"])


async def test_a_react_compile_error_goes_back_and_is_fixed(make_server: Any) -> None:
    server: LiveServer = await make_server(
        render_check=True, model=SCRIPTED + "react_fixes_compile_error"
    )
    events, complete = await build(server, "react")
    fixing = fixing_messages(events)
    assert len(fixing) == 1, fixing
    assert complete.repairs["fixed"] >= 1 and not complete.repairs["remaining"], complete.repairs
    assert complete.render["ok"], complete.render
