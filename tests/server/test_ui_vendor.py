"""The web UI's libraries are installed at set-up into a host cache and served from there; a
server without them says what to run instead of showing a page that cannot work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandforge.config import get_settings
from sandforge.server import vendor


async def test_the_libraries_are_served_from_the_cache(make_server: Any) -> None:
    root = get_settings().ui_vendor
    assert vendor.ready(root), "scripts/bootstrap runs `sandforge ui prepare`"
    live = await make_server(ui_vendor_dir=root)
    for name in vendor.SERVED:
        response = await live.client.get(f"/static/vendor/{name}")
        assert response.status_code == 200, name
        assert "javascript" in response.headers["content-type"], name
    page = (await live.client.get("/create")).text
    assert "sandforge ui prepare" not in page


async def test_a_server_without_them_says_what_to_run(make_server: Any, tmp_path: Path) -> None:
    live = await make_server(ui_vendor_dir=tmp_path / "empty")
    page = (await live.client.get("/create")).text
    assert "The page cannot work yet" in page
    assert "run `sandforge ui prepare`" in page
    assert (await live.client.get("/static/vendor/codemirror.js")).status_code == 404
