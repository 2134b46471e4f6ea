"""Publishing: the production build at `{slug}.apps.{domain}`, public, outliving the sandbox."""

from __future__ import annotations

import re

import httpx

from sandforge.events import CompleteEvent
from tests.conftest import LiveServer


async def offline_app(
    server: LiveServer, name: str, project_type: str = "web-app"
) -> CompleteEvent:
    events = await server.stream(
        "/api/agent/stream-daytona",
        {
            "messages": [{"role": "user", "content": "A landing page"}],
            "projectName": name,
            "projectType": project_type,
        },
    )
    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent), complete
    return complete


async def site_get(server: LiveServer, url: str, path: str = "/") -> httpx.Response:
    """GET a published URL the way a browser would, with no token or cookie."""
    host = httpx.URL(url).netloc.decode()
    async with httpx.AsyncClient(base_url=str(server.client.base_url)) as anonymous:
        return await anonymous.get(path, headers={"host": host})


async def test_a_published_app_serves_publicly_after_its_sandbox_is_deleted(
    server: LiveServer,
) -> None:
    complete = await offline_app(server, "Launch Page")
    project_id = complete.data.projectId
    assert project_id is not None
    published = await server.client.post(f"/api/projects/{project_id}/publish")
    assert published.status_code == 200, published.text
    site = published.json()
    assert site["url"] == f"http://launch-page.apps.localhost:{server.settings.port}/"
    assert site["version"] == 1

    stored = await server.services.store.version_files(project_id, 1)
    page = await site_get(server, site["url"])
    assert page.status_code == 200
    assert page.content == stored["index.html"]
    assert page.headers["content-type"].startswith("text/html")
    assert (await site_get(server, site["url"], "/styles.css")).content == stored["styles.css"]

    deleted = await server.client.delete(f"/api/sandboxes/{complete.data.sandboxId}")
    assert deleted.status_code in (200, 204), deleted.text
    assert (await site_get(server, site["url"])).content == stored["index.html"]

    # Republishing serves the new version at the same URL.
    await server.services.store.save_version(
        project_id, {**stored, "index.html": b"<h1>Second</h1>"}, message="second"
    )
    again = (await server.client.post(f"/api/projects/{project_id}/publish")).json()
    assert (again["url"], again["version"]) == (site["url"], 2)
    assert (await site_get(server, site["url"])).content == b"<h1>Second</h1>"
    status = (await server.client.get(f"/api/projects/{project_id}/publish")).json()
    assert status["site"]["version"] == 2

    gone = await server.client.delete(f"/api/projects/{project_id}/publish")
    assert gone.status_code == 204
    assert (await site_get(server, site["url"])).status_code == 404
    status = (await server.client.get(f"/api/projects/{project_id}/publish")).json()
    assert status == {"projectId": project_id, "site": None}
    again_gone = await server.client.delete(f"/api/projects/{project_id}/publish")
    assert again_gone.status_code == 404


async def test_a_react_app_is_published_from_vite_build(server: LiveServer) -> None:
    complete = await offline_app(server, "Shop", "react")
    project_id = complete.data.projectId
    published = await server.client.post(f"/api/projects/{project_id}/publish")
    assert published.status_code == 200, published.text
    url = published.json()["url"]

    index = await site_get(server, url)
    assert index.status_code == 200
    script = re.search(r'src="(/assets/[^"]+\.js)"', index.text)
    assert script is not None, index.text  # built: the page loads a bundle, not src/main.tsx
    bundle = await site_get(server, url, script[1])
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    # A client-side route gets the app's page; a missing asset is a 404.
    assert (await site_get(server, url, "/cart/3")).text == index.text
    assert (await site_get(server, url, "/assets/missing.js")).status_code == 404

    # The build output is not part of the project's files.
    sandbox_files = await server.client.get(f"/api/sandboxes/{complete.data.sandboxId}/files")
    assert not any(".sandforge-build" in f["path"] for f in sandbox_files.json()["files"])


async def test_publishing_what_cannot_be_published(server: LiveServer) -> None:
    missing = await server.client.post("/api/projects/pj000000000000/publish")
    assert missing.status_code == 404
    project = await server.services.store.create_project(
        name="empty", project_type="web-app", flow="sandbox", agents=[], provider="local"
    )
    nothing = await server.client.post(f"/api/projects/{project.id}/publish")
    assert nothing.status_code == 404
    assert nothing.json()["error"]["code"] == "no_version"
    unknown = await site_get(server, f"http://nobody.apps.localhost:{server.settings.port}/")
    assert unknown.status_code == 404
