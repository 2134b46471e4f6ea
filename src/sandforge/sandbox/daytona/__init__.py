"""The Daytona provider: the Sandbox protocol over the official `daytona` SDK (AsyncDaytona).

Inside a Daytona sandbox
    <project_dir>        `DaytonaOptions.project_dir`, `/home/daytona/project` by default. Every
                         relative path (files, cwd) resolves against it; an escaping path is a
                         PathEscapeError before any request is made.
    sessions             one per named process, `sandforge-<name>`. The process is the session's
                         only command, run with run_async; its combined log is the session
                         command's `output`.

Labels
    The spec's labels, plus two of ours that `info()` never shows:
    `sandforge-create`   a nonce unique to one create call. After a create times out the sandbox
                         may still appear; it is found by this label and deleted.
    `sandforge-preview`  the token our preview proxy accepts (`SandboxInfo.preview_token`, the
                         `accessToken` of `complete`). Daytona's own preview token never leaves
                         the server: `upstream()` hands it to the proxy as a header,
                         with the header that skips Daytona's browser warning page.

Errors are translated: a 401 becomes DaytonaAuthError (check DAYTONA_API_KEY), a missing
sandbox SandboxNotFound, a missing file SandboxFileNotFound. An exec that times out returns
`ExecResult(timed_out=True, exit_code=137)` (128 + SIGKILL), as the local provider does.
"""

from .errors import DaytonaAuthError
from .provider import DaytonaProvider
from .sandbox import (
    LABEL_CREATE,
    LABEL_PREVIEW,
    PREVIEW_TOKEN_HEADER,
    SKIP_PREVIEW_WARNING_HEADER,
    DaytonaOptions,
    DaytonaPreview,
    DaytonaSandbox,
)

__all__ = [
    "LABEL_CREATE",
    "LABEL_PREVIEW",
    "PREVIEW_TOKEN_HEADER",
    "SKIP_PREVIEW_WARNING_HEADER",
    "DaytonaAuthError",
    "DaytonaOptions",
    "DaytonaPreview",
    "DaytonaProvider",
    "DaytonaSandbox",
]
