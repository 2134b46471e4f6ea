"""What the store reports when something asked for is not there."""

from __future__ import annotations

from ..errors import NotFound


class ProjectNotFound(NotFound):
    code = "project_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class RunNotFound(NotFound):
    code = "run_not_found"


class FileNotStored(NotFound):
    """A project file the store does not hold (the persistent flow's missing file)."""

    code = "file_not_found"


class ShareLinkNotFound(NotFound):
    code = "share_link_not_found"
