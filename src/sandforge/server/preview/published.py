"""Published sites: `{slug}.apps.{preview domain}`, public, served from the stored build."""

from __future__ import annotations

import posixpath
import re

from starlette.responses import Response

from ...store.published import PublishedSites
from .http import file_response, page

_HOST = re.compile(r"^(?P<slug>[a-z0-9][a-z0-9-]{0,62})\.apps\.(?P<domain>[^:]+)(:\d+)?$")


def parse_published_host(host: str, domain: str) -> str | None:
    """The slug a published site's host names, or None for any other host."""
    match = _HOST.match(host.lower())
    if match is None or match["domain"] != domain.lower():
        return None
    return match["slug"]


class PublishedServer:
    def __init__(self, sites: PublishedSites) -> None:
        self.sites = sites

    async def response(self, slug: str, url_path: str) -> Response:
        path = url_path.lstrip("/")
        if path == "" or path.endswith("/"):
            path += "index.html"
        content = await self.sites.read_file(slug, path)
        if content is None and "." not in posixpath.basename(path):
            # A client-side route (/todos/3): the app's own router answers it.
            content, path = await self.sites.read_file(slug, "index.html"), "index.html"
        if content is None:
            if await self.sites.by_slug(slug) is None:
                return page(404, "Nothing is published here", f"No app is published as {slug}.")
            return page(404, "Not found", f"The published app has no file {path}.")
        return file_response(path, content)
