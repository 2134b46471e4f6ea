"""The render browser runs a hostile page: it is not root and reaches only its preview."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from sandforge.render import Renderer
from sandforge.render.jail import RENDER_UID

from .conftest import Datagrams, Listener, Preview

MakeRenderer = Callable[..., Awaitable[Renderer]]
MakeListener = Callable[[], Awaitable[Listener]]

# Every way a page has to send something somewhere; the title says when it tried them all.
# /hold.png (answered late) holds the load event, and so the check, until then.
PROBE = """<!doctype html><title>probing</title><h1>Hello</h1><img src="/hold.png"><script>
const targets = %s;
const tries = targets.map((url) => fetch(url, {mode: 'no-cors'}).catch(() => null));
for (const url of targets) {
  new Image().src = url + '?img';
  navigator.sendBeacon(url + '?beacon', 'x');
  try { new WebSocket(url.replace('http', 'ws') + 'ws').onerror = () => {}; } catch {}
  const frame = document.createElement('iframe');
  frame.src = url + '?frame';
  document.body.append(frame);
}
const pc = new RTCPeerConnection({iceServers: [{urls: 'stun:127.0.0.1:%d'}]});
pc.createDataChannel('leak');
const gathered = new Promise((done) => {
  pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && done();
  setTimeout(done, 1000);
});
pc.createOffer().then((offer) => pc.setLocalDescription(offer));
Promise.allSettled([...tries, gathered]).then(() => { document.title = 'probed'; });
</script>"""


def _processes(pids: list[int]) -> dict[bytes, tuple[list[int], str]]:
    """Command line → (uids: real, effective, saved, fs; network namespace) of the living."""
    found = {}
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
            netns = os.readlink(f"/proc/{pid}/ns/net")
        except FileNotFoundError:  # a context's renderer, gone with its context
            continue
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        found[command] = ([int(value) for value in uid_line.split()[1:]], netns)
    return found


async def test_a_page_reaches_neither_the_host_loopback_nor_the_api_and_runs_unprivileged(
    preview: Preview, make_renderer: MakeRenderer, make_listener: MakeListener
) -> None:
    host_service = await make_listener()
    api = await make_listener()
    loop = asyncio.get_running_loop()
    transport, udp = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
    targets = [
        f"http://127.0.0.1:{host_service.port}/",
        f"http://localhost:{host_service.port}/",
        f"http://127.0.0.1:{api.port}/api/projects",
        f"http://localhost:{api.port}/api/projects",
        # The sandforge server itself, under its API's name and its bare address.
        f"http://localhost:{preview.port}/api/projects",
        f"http://127.0.0.1:{preview.port}/api/projects",
        "http://example.com/",
    ]
    udp_port = transport.get_extra_info("sockname")[1]
    preview.add("/", PROBE % (json.dumps(targets), udp_port))
    preview.add("/hold.png", "", kind="image/png")
    preview.delays["/hold.png"] = 3.0
    renderer = await make_renderer()
    try:
        report = await renderer.check(preview.url(), timeout_s=20)
        assert report.title == "probed", report.to_json()
        processes = _processes(await renderer.browser_pids())
        assert any(b"chromium" in command for command in processes), processes
        for command, (uids, netns) in processes.items():
            assert 0 not in uids, (command, uids)
            if os.geteuid() == 0:
                assert uids == [RENDER_UID] * 4
            if b"chromium" in command:
                assert netns != os.readlink("/proc/self/ns/net"), command
                # Chromium's own sandbox is on, unless the kernel refused it (then ours holds).
                assert (b"--no-sandbox" in command) != renderer.chromium_sandbox, command
    finally:
        # With the browser gone, nothing it started can still arrive.
        await renderer.aclose()
        transport.close()
    assert host_service.connections == 0
    assert api.connections == 0
    assert udp.received == []
    assert preview.hosts() == {preview.host()}
    assert report.third_party_requests, "the blocked attempts are reported"
    assert report.failed_requests == []


async def test_a_page_cannot_reach_another_preview_even_one_being_checked(
    preview: Preview, make_renderer: MakeRenderer
) -> None:
    """Two checks at once: each context admits only its own preview's host."""
    other = preview.url("/from-a", project="pj0002")
    preview.add(
        "/a",
        "<!doctype html><h1>A</h1><script>"
        f"const tries = Array.from({{length: 20}}, () => fetch('{other}').catch(() => null));"
        "Promise.allSettled(tries).then(() => { document.title = 'tried'; });"
        "</script>",
    )
    # B keeps its check open for a while, so A probes while B's host is admitted.
    preview.add("/b", "<!doctype html><h1>B</h1><img src='/b-slow.png'>")
    preview.add("/b-slow.png", "", kind="image/png")
    preview.delays["/b-slow.png"] = 1.0
    renderer = await make_renderer(concurrency=2)
    report_a, report_b = await asyncio.gather(
        renderer.check(preview.url("/a")), renderer.check(preview.url("/b", project="pj0002"))
    )
    await renderer.aclose()
    assert report_a.title == "tried"
    assert (preview.host("pj0002"), "/from-a") not in preview.seen
    assert (preview.host("pj0002"), "/b-slow.png") in preview.seen
    [blocked] = report_a.third_party_requests
    assert blocked.startswith(f"GET {other}: ")
    assert report_b.ok, report_b.problems()
