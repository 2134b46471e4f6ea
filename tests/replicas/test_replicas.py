"""Three replicas share one Postgres and one Redis: runs go to whichever has room, events
are read from any, previews answer through any, and a replica killed mid-run is noticed.

The test that kills a replica comes last: the module's three replicas serve the others.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from typing import Any

import asyncpg
import httpx

from tests.replicas.conftest import Cluster, ReplicaProcess, ask, sse_events
from tests.replicas.models import HANG, PACED, PACED_CHUNKS

RUN_ID = "x-sandforge-run-id"
INTERRUPTED_WITHIN_S = 10.0
SPREAD_RUNS = 30


def _events(replica: ReplicaProcess, run_id: str, last_event_id: int | None = None) -> Any:
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    return replica.client().stream("GET", f"/api/runs/{run_id}/events", headers=headers)


def _run(replica: ReplicaProcess, run_id: str) -> dict[str, Any]:
    with replica.client() as client:
        found: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
        return found


def test_a_run_started_on_a_is_streamed_from_b_and_resumed_from_c(cluster: Cluster) -> None:
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    with (
        a.client() as client,
        client.stream("POST", "/api/agent/stream", json=ask(f"{PACED} Streamed")) as started,
    ):
        assert started.status_code == 200, started.read()
        run_id = started.headers[RUN_ID]
    # A's stream is gone after its headers; B follows the run live, then disconnects.
    received: list[tuple[int, dict[str, Any]]] = []
    with _events(b, run_id) as stream:
        for seq, event in sse_events(stream.iter_lines()):
            received.append((seq, event))
            if event["type"] == "message" and event["data"]["content"].startswith("chunk 3 "):
                break
    assert _run(c, run_id)["state"] == "running", "B followed a run that had already ended"
    with _events(c, run_id, last_event_id=received[-1][0]) as stream:
        received += list(sse_events(stream.iter_lines()))

    assert [seq for seq, _ in received] == list(range(1, len(received) + 1))
    assert received[-1][1]["type"] == "complete", received[-1]
    chunks = [e["data"]["content"] for _, e in received if e["type"] == "message"]
    assert [c for c in chunks if c.startswith("chunk ")] == [
        f"chunk {i} " for i in range(PACED_CHUNKS)
    ]
    with a.client() as client:
        stored = list(sse_events(client.get(f"/api/runs/{run_id}/events").iter_lines()))
    assert stored == received
    assert _run(a, run_id)["events"] == len(received)


def test_project_viewers_on_every_replica_see_a_run_wherever_it_runs(cluster: Cluster) -> None:
    with cluster["a"].client() as client:
        first = client.post("/api/agent/stream", json=ask("Viewed everywhere"))
    project_id = first.headers["x-sandforge-project-id"]
    viewers = [Reader(r, f"/api/projects/{project_id}/events") for r in cluster.replicas.values()]
    for viewer in viewers:
        viewer.start()
        assert viewer.subscribed.wait(30), viewer.failure
    with cluster["b"].client() as client:
        follow_up = client.post("/api/agent/stream", json=ask("Seen", projectId=project_id))
    sent = [event for _, event in sse_events(follow_up.iter_lines())]
    assert sent[-1]["type"] == "complete"
    for viewer in viewers:
        viewer.join(60)
        assert viewer.failure is None, (viewer.replica.name, viewer.failure)
        assert [event for _, event in viewer.events] == sent, viewer.replica.name


async def _stream_to_end(client: httpx.AsyncClient, prompt: str) -> tuple[str, dict[str, Any]]:
    async with client.stream("POST", "/api/agent/stream", json=ask(prompt)) as response:
        assert response.status_code == 200, await response.aread()
        last: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                last = json.loads(line[5:])
        return response.headers[RUN_ID], last


async def test_thirty_runs_posted_round_robin_complete_spread_over_the_replicas(
    cluster: Cluster,
) -> None:
    replicas = list(cluster.replicas.values())
    clients = [httpx.AsyncClient(base_url=r.url, timeout=120) for r in replicas]
    try:
        outcomes = await asyncio.gather(
            *(
                _stream_to_end(clients[i % len(clients)], f"Spread run {i}")
                for i in range(SPREAD_RUNS)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    assert [last["type"] for _, last in outcomes] == ["complete"] * SPREAD_RUNS, outcomes
    connection = await asyncpg.connect(cluster.database_url)
    try:
        rows = await connection.fetch(
            "SELECT replica_id FROM runs WHERE id = ANY($1::text[])",
            [run_id for run_id, _ in outcomes],
        )
    finally:
        await connection.close()
    ran_on = Counter(row["replica_id"] for row in rows)
    assert sum(ran_on.values()) == SPREAD_RUNS
    assert set(ran_on) == set(cluster.replicas), ran_on


def _sandbox_turn(replica: ReplicaProcess, prompt: str, **extra: Any) -> dict[str, Any]:
    with (
        replica.client(timeout=180) as client,
        client.stream("POST", "/api/agent/stream-daytona", json=ask(prompt, **extra)) as response,
    ):
        assert response.status_code == 200, response.read()
        events = [event for _, event in sse_events(response.iter_lines())]
    assert events[-1]["type"] == "complete", (events[-1], replica.log_tail())
    data: dict[str, Any] = events[-1]["data"]
    return data


def _owner_of_sandbox(cluster: Cluster, sandbox_id: str) -> ReplicaProcess:
    for replica in cluster.replicas.values():
        if replica.process.poll() is not None:
            continue
        with replica.client() as client:
            listed = client.get("/api/sandboxes").json()["sandboxes"]
        if any(s["id"] == sandbox_id for s in listed):
            return replica
    raise AssertionError(f"no replica lists sandbox {sandbox_id}")


def _preview(replica: ReplicaProcess, target: str, path: str, token: str) -> httpx.Response:
    headers = {
        "host": f"3000-{target}.localhost:{replica.port}",
        "x-sandforge-preview-token": token,
    }
    with replica.client() as client:
        return client.get(path, headers=headers)


def test_a_preview_of_a_sandbox_owned_by_b_answers_through_a(cluster: Cluster) -> None:
    done = _sandbox_turn(cluster["b"], "Served from its owner")
    owner = _owner_of_sandbox(cluster, done["sandboxId"])
    others = [r for r in cluster.replicas.values() if r is not owner]
    for other in others:
        response = _preview(other, done["projectId"], "/", done["accessToken"])
        assert response.status_code == 200, (other.name, response.text)
        assert "<h1>Served from its owner</h1>" in response.text
        # A sandbox's own host is the owner's to answer too, and access is its to decide:
        # private without the sandbox's token (a replica without the sandbox says 404).
        with other.client() as client:
            host = f"3000-{done['sandboxId']}.localhost:{other.port}"
            refused = client.get("/", headers={"host": host})
        assert refused.status_code == 401, refused.text
        assert "This preview is private" in refused.text
    # The sandbox stayed where it was: nobody rebuilt it to answer.
    assert _owner_of_sandbox(cluster, done["sandboxId"]) is owner


class Reader(threading.Thread):
    """Follows an event stream on one replica until a run's terminal event."""

    def __init__(self, replica: ReplicaProcess, path: str, silent_for_s: float = 120) -> None:
        super().__init__(daemon=True)
        self.replica, self.path, self.silent_for_s = replica, path, silent_for_s
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.failure: BaseException | None = None
        self.subscribed = threading.Event()
        """The stream is open (a project feed's first comment, or a run's first message)."""

    def run(self) -> None:
        try:
            timeout = httpx.Timeout(30, read=self.silent_for_s)
            with (
                httpx.Client(base_url=self.replica.url, timeout=timeout) as client,
                client.stream("GET", self.path) as stream,
            ):
                lines = stream.iter_lines()
                for item in sse_events(self._noting_comments(lines)):
                    self.events.append(item)
                    if item[1]["type"] == "message":
                        self.subscribed.set()
                    if item[1]["type"] in ("complete", "error"):
                        return
        except BaseException as exc:
            self.failure = exc
        finally:
            self.subscribed.set()

    def _noting_comments(self, lines: Any) -> Any:
        for line in lines:
            if line.startswith(":"):
                self.subscribed.set()
            yield line


def _replica_running(cluster: Cluster, asker: ReplicaProcess, run_id: str) -> ReplicaProcess:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with asker.client() as client:
            for replica in client.get("/api/replicas").json()["replicas"]:
                if run_id in replica["runs"]:
                    return cluster[replica["id"]]
        time.sleep(0.1)
    raise AssertionError(f"no replica took run {run_id}")


def test_kill_9_of_a_replica_mid_run(cluster: Cluster) -> None:
    first = _sandbox_turn(cluster["c"], "First turn")
    project_id = first["projectId"]
    with cluster["b"].client() as client:
        queued = client.post("/api/runs", json=ask(f"{HANG} Second turn", projectId=project_id))
    assert queued.status_code == 202, queued.text
    run_id = queued.json()["runId"]
    doomed = _replica_running(cluster, cluster["b"], run_id)
    # The project's sandbox lives on one replica: the follow-up ran there.
    assert doomed is _owner_of_sandbox(cluster, first["sandboxId"])
    reader_at, follow_up_at = [r for r in cluster.replicas.values() if r is not doomed]
    reader = Reader(reader_at, f"/api/runs/{run_id}/events", INTERRUPTED_WITHIN_S)
    reader.start()
    assert reader.subscribed.wait(60), reader.failure
    doomed.kill()
    reader.join(INTERRUPTED_WITHIN_S + 5)

    assert reader.failure is None, f"no end within {INTERRUPTED_WITHIN_S} s: {reader.failure!r}"
    last = reader.events[-1][1]
    assert last["type"] == "error" and last["data"]["code"] == "interrupted", last
    assert doomed.name in last["data"]["message"]
    assert [seq for seq, _ in reader.events] == list(range(1, len(reader.events) + 1))
    assert _run(follow_up_at, run_id)["state"] == "interrupted"
    with follow_up_at.client() as client:
        alive = [r["id"] for r in client.get("/api/replicas").json()["replicas"]]
    assert doomed.name not in alive

    third = _sandbox_turn(follow_up_at, "Third turn", projectId=project_id)
    assert third["sandboxId"] != first["sandboxId"]
    rebuilt_on = _owner_of_sandbox(cluster, third["sandboxId"])
    assert rebuilt_on is not doomed
    # The new sandbox was rebuilt from the stored files: the first turn's file is there.
    token = third["accessToken"]
    assert _preview(reader_at, project_id, "/turn-1.txt", token).text == "First turn"
    assert "<h1>Third turn</h1>" in _preview(reader_at, project_id, "/", token).text
