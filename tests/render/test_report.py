"""What the rendered check reports about a page, in real Chromium."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from sandforge.render import Renderer

from .conftest import Preview

MakeRenderer = Callable[..., Awaitable[Renderer]]


async def test_a_page_that_renders_is_ok_with_a_screenshot(
    preview: Preview, make_renderer: MakeRenderer, tmp_path: Path
) -> None:
    preview.add("/", "<!doctype html><title>Calculator</title><h1>0</h1><button>=</button>")
    renderer = await make_renderer()
    report = await renderer.check(preview.url(), screenshot_path=tmp_path / "shot.png")
    assert report.ok, report.problems()
    assert report.status == 200 and report.title == "Calculator" and not report.blank
    assert (tmp_path / "shot.png").read_bytes().startswith(b"\x89PNG")
    assert report.to_json()["problems"] == [] and report.to_json()["screenshot"] == str(
        tmp_path / "shot.png"
    )
    assert preview.hosts() == {preview.host()}


async def test_a_blank_page_is_reported_as_blank(
    preview: Preview, make_renderer: MakeRenderer
) -> None:
    preview.add("/", "<!doctype html><title>App</title><div id=root></div>")
    report = await (await make_renderer()).check(preview.url())
    assert report.blank and not report.ok
    assert report.problems() == ["Blank page: nothing is visible in <body>"]


async def test_a_script_that_throws_reports_the_exception_with_its_file_and_line(
    preview: Preview, make_renderer: MakeRenderer
) -> None:
    preview.add("/", "<!doctype html><h1>App</h1><script src='/src/main.js?t=1'></script>")
    preview.add(
        "/src/main.js",
        "console.log('starting');\nconsole.error('config missing');\n"
        "const app = undefined;\napp.mount('#root');\n",
        kind="text/javascript",
    )
    report = await (await make_renderer()).check(preview.url())
    assert not report.ok
    [exception] = report.exceptions
    assert "TypeError" in exception.message and "mount" in exception.message
    assert exception.url == preview.url("/src/main.js?t=1") and exception.line == 4
    [console] = report.console_errors
    assert console.message == "config missing" and console.line == 2
    problems = report.problems()
    assert any(p.startswith("Uncaught exception: TypeError") for p in problems), problems
    assert any("(at /src/main.js:4:" in p for p in problems), problems
    assert report.to_json()["exceptions"][0]["line"] == 4
    assert report.to_json()["consoleErrors"] == ["config missing"]


async def test_a_syntax_error_is_located_too(preview: Preview, make_renderer: MakeRenderer) -> None:
    preview.add("/", "<!doctype html><h1>App</h1><script src='/app.js'></script>")
    preview.add("/app.js", "const a = 1;\n\nconst b = ;\n", kind="text/javascript")
    report = await (await make_renderer()).check(preview.url())
    [exception] = report.exceptions
    assert "SyntaxError" in exception.message
    assert exception.url == preview.url("/app.js") and exception.line == 3


async def test_missing_own_files_are_told_apart_from_unreachable_third_parties(
    preview: Preview, make_renderer: MakeRenderer
) -> None:
    preview.add(
        "/",
        "<!doctype html><h1>Shop</h1><script src='/assets/app.js'></script>"
        "<link rel=stylesheet href='https://cdn.example.com/style.css'>"
        "<img src='http://images.example.com/logo.png'>",
    )
    report = await (await make_renderer()).check(preview.url())
    assert report.failed_requests == [f"GET {preview.url('/assets/app.js')}: 404"]
    assert len(report.third_party_requests) == 2
    assert all("example.com" in line for line in report.third_party_requests)
    assert report.problems() == [f"Failed request: GET {preview.url('/assets/app.js')}: 404"]


async def test_pages_that_are_not_the_app_are_reported(
    preview: Preview, make_renderer: MakeRenderer
) -> None:
    preview.add(
        "/listing/",
        "<!doctype html><title>Directory listing for /</title><h1>Directory listing for /</h1>"
        "<ul><li><a href='src/'>src/</a></li><li><a href='package.json'>package.json</a></ul>",
    )
    preview.add(
        "/proxy-error/",
        "<!doctype html><title>Preview not running</title><h1>Preview not running</h1>"
        "<p>The dev server is not answering.</p><p>sandforge preview</p>",
        status=502,
    )
    preview.add(
        "/daytona/",
        "<!doctype html><title>Daytona Preview - Warning</title>"
        "<h1>Preview URL Warning</h1><button>I Understand, Continue</button>",
    )
    renderer = await make_renderer()
    for path, marker in [
        ("/listing/", "Directory listing for /"),
        ("/proxy-error/", "sandforge preview"),
        ("/daytona/", "Daytona Preview - Warning"),
    ]:
        report = await renderer.check(preview.url(path))
        assert report.not_app == marker, (path, report.to_json())
        assert not report.ok and report.problems()[0].startswith("Not the app: ")
        assert report.to_json()["notApp"] == marker


async def test_the_apps_own_websocket_works(preview: Preview, make_renderer: MakeRenderer) -> None:
    """Vite's HMR client talks over a WebSocket; through the check's proxy it must connect."""
    preview.add(
        "/",
        "<!doctype html><h1>App</h1><script>"
        "const ws = new WebSocket(`ws://${location.host}/hmr`);"
        "ws.onmessage = (m) => { document.title = m.data; };"
        "ws.onerror = () => console.error('websocket failed');"
        "</script>",
    )
    report = await (await make_renderer()).check(preview.url())
    assert report.ok, report.problems()
    assert report.title == "hello over the socket"
    assert (preview.host(), "/hmr") in preview.seen


async def test_a_page_that_never_finishes_loading_is_a_problem(
    preview: Preview, make_renderer: MakeRenderer
) -> None:
    preview.add("/", "<!doctype html><h1>Slow</h1><img src='/never.png'>")
    preview.delays["/never.png"] = 30
    report = await (await make_renderer()).check(preview.url(), timeout_s=2)
    assert report.error == "the page did not finish loading within 2 s"
    assert report.problems() == [f"Page did not load: {report.error}"] and not report.ok


async def test_a_check_that_cannot_run_is_no_fault_of_the_app(preview: Preview) -> None:
    renderer = Renderer(upstream=("127.0.0.1", preview.port), chromium="/nonexistent/chromium")
    report = await renderer.check(preview.url())
    await renderer.aclose()
    assert report.unavailable and "Chromium is not installed" in report.unavailable
    assert report.problems() == [] and not report.ok
    assert report.to_json()["unavailable"] == report.unavailable
    assert preview.seen == []
