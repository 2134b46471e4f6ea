"""Files a generated app may leave that the store cannot keep: a symlink, a FIFO, a big file,
and stranger ones (symlink loops, names that are not UTF-8, sockets, very long paths).

The run still completes; the stored version leaves them out and the stream says so; git
in the sandbox keeps the symlink as a symlink.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandforge.events import CompleteEvent
from sandforge.templates import WEB_APP
from tests.conftest import LiveServer
from tests.dbs import database

from .models import LONG_DIR

ODD_FILES = "factory:tests.reliability.models:odd_files"
SKIPPED = (
    "link.html",
    "pipe",
    "big.bin",
    "loop",
    "outside",
    "dangling",
    "sub/up",
    "bad\\xffname",
    "sock",
    f"{LONG_DIR}/f",
)


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
async def test_symlinks_fifos_and_big_files_are_skipped_not_fatal(
    db: str, make_server: Any, tmp_path: Path
) -> None:
    async with database(db, tmp_path) as url:
        server: LiveServer = await make_server(model=ODD_FILES, database_url=url)
        events = await server.stream(
            "/api/agent/stream-daytona",
            {"messages": [{"role": "user", "content": "Make a page with odd files"}]},
        )
        ran = [e for _, e in events if e.type == "tool" and e.data.action == "run"]
        assert ran and ran[0].data.exitCode == 0, ran
        final = events[-1][1]
        assert isinstance(final, CompleteEvent), final
        assert final.data.version == 1

        warnings = [
            e.data.message
            for _, e in events
            if e.type == "progress" and e.data.message.startswith("Not kept")
        ]
        assert len(warnings) == 1, warnings
        for name in SKIPPED:
            assert f"{name} (" in warnings[0], name

        project_id = final.data.projectId or ""
        stored = await server.services.store.version_files(project_id, 1)
        assert set(stored) == {*WEB_APP.starter_files, "new\nline"}

        sandbox = await server.services.fleet.provider("local").get(final.data.sandboxId)
        listed = await sandbox.exec("git ls-files -s link.html")
        mode, sha = listed.stdout.split()[:2]
        assert mode == "120000", listed.stdout
        target = await sandbox.exec(f"git cat-file -p {sha}")
        assert target.stdout == "index.html"
        # The dev server serves the symlink's target, through the proxy.
        page = await server.preview_get(project_id, "/link.html", token=final.data.accessToken)
        assert page.status_code == 200 and "<h1>Paced</h1>" in page.text
