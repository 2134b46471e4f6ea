"""The pipeline's rendered check: real Chromium loads each finished preview through the real
server and reports what it shows."""

from __future__ import annotations

from typing import Any

from sandforge.events import CompleteEvent
from sandforge.render import Renderer
from tests.conftest import LiveServer


async def rendered(server: LiveServer, prompt: str) -> dict[str, Any]:
    events = await server.stream(
        "/api/agent/stream-daytona", {"messages": [{"role": "user", "content": prompt}]}
    )
    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent), complete
    assert complete.data.render is not None
    status = await server.client.get(f"/api/sandboxes/{complete.data.sandboxId}/preview")
    assert status.json()["render"] == complete.data.render
    return complete.data.render


async def test_a_page_that_renders_is_ok_with_a_screenshot(make_server: Any) -> None:
    server: LiveServer = await make_server(render_check=True)
    render = await rendered(server, "Create a calculator with a modern design")
    assert render["ok"] and not render["blank"], repr(render)
    assert render["title"] == "Calculator"
    assert render["consoleErrors"] == [] and render["status"] == 200
    shot = await server.client.get(render["screenshot"])
    assert shot.status_code == 200 and shot.content.startswith(b"\x89PNG")


async def test_a_blank_page_is_reported_as_blank(make_server: Any) -> None:
    server: LiveServer = await make_server(
        render_check=True, model="factory:tests.scripted.scripted_models:blank_page"
    )
    render = await rendered(server, "Create a calculator")
    assert render["blank"] and not render["ok"]


async def test_a_page_that_throws_reports_the_console_error(make_server: Any) -> None:
    server: LiveServer = await make_server(
        render_check=True, model="factory:tests.scripted.scripted_models:throwing_page"
    )
    render = await rendered(server, "Create a calculator")
    assert not render["blank"] and not render["ok"]
    assert any("calculator exploded" in e["message"] for e in render["exceptions"]), render


async def test_the_servers_warm_renderer_checks_a_private_preview_and_nothing_else(
    make_server: Any,
) -> None:
    """`Renderer.from_settings`: the server is the upstream; the token's redirect and cookie
    work; it checks previews only, never the same server under its API's name."""
    server: LiveServer = await make_server()
    events = await server.stream(
        "/api/agent/stream-daytona",
        {"messages": [{"role": "user", "content": "Create a calculator"}]},
    )
    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent), complete
    preview_url = complete.data.previewUrl
    async with Renderer.from_settings(server.settings) as renderer:
        report = await renderer.check(f"{preview_url}?token={complete.data.accessToken}")
        assert report.ok, report.to_json()
        assert report.title == "Calculator" and report.status == 200
        without_token = await renderer.check(preview_url)
        assert without_token.status == 401 and not without_token.ok
        api = await renderer.check(f"http://localhost:{server.settings.port}/api/projects")
    assert api.status is None and api.unavailable and "not a preview URL" in api.unavailable
    assert not api.ok and api.problems() == []
