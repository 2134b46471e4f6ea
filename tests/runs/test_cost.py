"""The cost ledger and the budgets, with the real Anthropic SDK against the fake API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from sandforge.events import CompleteEvent, ErrorEvent
from tests.conftest import LiveServer
from tests.fakes.model_apis import FakeAnthropic, ToolCall, Turn
from tests.projects.test_export import sandforge_cli

MODEL = "claude-sonnet-4-5"


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


async def anthropic_server(make_server: Any, fake: FakeAnthropic, **settings: Any) -> LiveServer:
    server: LiveServer = await make_server(
        model=f"anthropic:{MODEL}",
        anthropic_api_key=fake.api_key,
        anthropic_base_url=fake.url,
        **settings,
    )
    return server


def price(turn: Turn) -> Decimal:
    """What genai-prices says one scripted response costs."""
    usage = Usage(
        input_tokens=turn.input_tokens,
        output_tokens=turn.output_tokens,
        cache_read_tokens=turn.cache_read_tokens,
        cache_write_tokens=turn.cache_write_tokens,
    )
    return calc_price(usage, MODEL, provider_id="anthropic").total_price


def ask(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}], **extra}


async def test_the_ledger_has_what_the_model_reported_at_the_price_tables_cost(
    make_server: Any, fake: FakeAnthropic, tmp_path: Path
) -> None:
    script = [
        Turn(
            [ToolCall("write_file", {"path": "index.html", "content": "<h1>Hi</h1>"})],
            input_tokens=1200,
            output_tokens=80,
            cache_read_tokens=200,
        ),
        Turn(["Done."], input_tokens=1500, output_tokens=20, cache_write_tokens=100),
    ]
    fake.set_script(script)
    server = await anthropic_server(make_server, fake)
    events = await server.stream("/api/agent/stream", ask("A greeting page"))
    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent), complete
    expected_cost = float(sum(price(turn) for turn in script))
    assert complete.data.costUsd == pytest.approx(expected_cost, abs=1e-8)
    assert (complete.data.inputTokens, complete.data.outputTokens) == (2700, 100)
    assert complete.data.tokensUsed == 2800

    project_id = complete.data.projectId
    usage = (await server.client.get(f"/api/projects/{project_id}/usage")).json()
    [run] = usage["runs"]
    assert run["runId"] == complete.data.runId
    assert run["model"] == f"anthropic:{MODEL}"
    reported = (run["inputTokens"], run["outputTokens"], run["cacheReadTokens"])
    assert reported == (2700, 100, 200)
    assert (run["cacheWriteTokens"], run["modelRequests"]) == (100, 2)
    assert run["costUsd"] == pytest.approx(expected_cost, abs=1e-8)
    assert usage["total"]["costUsd"] == pytest.approx(expected_cost, abs=1e-8)

    everything = (await server.client.get("/api/usage")).json()
    assert everything["total"]["runs"] == 1
    assert everything["projects"][0]["projectId"] == project_id
    later = (await server.client.get("/api/usage?since=2999-01-01T00:00:00Z")).json()
    assert later["total"]["runs"] == 0
    bad = await server.client.get("/api/usage?since=someday")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_request"

    printed = await asyncio.to_thread(sandforge_cli, server, tmp_path, "usage", "--json")
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["total"] == everything["total"]
    table = await asyncio.to_thread(sandforge_cli, server, tmp_path, "usage", project_id)
    assert table.returncode == 0, table.stderr
    assert complete.data.runId in table.stdout
    assert f"${expected_cost:.4f}" in table.stdout


async def test_a_budget_stops_the_run_with_its_files_kept(
    make_server: Any, fake: FakeAnthropic
) -> None:
    # $3 per million input tokens: each response costs about $0.003.
    fake.set_script(
        [
            Turn(
                [ToolCall("write_file", {"path": "index.html", "content": "<h1>kept</h1>"})],
                input_tokens=1000,
                output_tokens=10,
            ),
            Turn(
                [ToolCall("write_file", {"path": "later.js", "content": "never"})],
                input_tokens=1000,
                output_tokens=10,
            ),
            Turn(["never asked for"], input_tokens=1000),
        ]
    )
    server = await anthropic_server(make_server, fake, budget_run_usd=0.005, budget_day_usd=0.006)
    events = await server.stream("/api/agent/stream-daytona", ask("A page"))
    stopped = events[-1][1]
    assert isinstance(stopped, ErrorEvent), stopped
    assert stopped.data.code == "budget_reached"
    assert "SANDFORGE_BUDGET_RUN_USD" in stopped.data.message
    assert "saved as version 1" in stopped.data.message
    assert fake.request_count == 2  # it stopped before the second response's tool call ran
    usage = stopped.data.usage
    assert usage is not None
    one_response = float(price(Turn(input_tokens=1000, output_tokens=10)))
    assert usage["costUsd"] == pytest.approx(2 * one_response)
    assert usage["sandboxUsage"]["wallSeconds"] > 0

    assert stopped.data.sandboxId is not None
    sandbox = await server.client.get(f"/api/sandboxes/{stopped.data.sandboxId}")
    assert sandbox.status_code == 200  # kept, as the files are
    project = sandbox.json()["projectId"]
    files = await server.services.store.version_files(project, 1)
    assert files["index.html"] == b"<h1>kept</h1>"
    assert "later.js" not in files

    ledger = (await server.client.get(f"/api/projects/{project}/usage")).json()
    assert ledger["runs"][0]["sandboxWallSeconds"] > 0

    # The day's spending is now past the daily budget: the next run stops before any request.
    events = await server.stream("/api/agent/stream", ask("Another page"))
    refused = events[-1][1]
    assert isinstance(refused, ErrorEvent)
    assert refused.data.code == "budget_reached"
    assert "SANDFORGE_BUDGET_DAY_USD" in refused.data.message
    assert fake.request_count == 2
