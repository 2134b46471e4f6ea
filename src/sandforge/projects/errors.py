"""The errors of the project rules: what the API answers when a rule says no."""

from __future__ import annotations

from ..errors import Conflict, InvalidRequest, TooManyRequests, Unavailable
from ..sandbox import SandboxError


class RunInFlight(Conflict):
    code = "run_in_flight"


class TooManySandboxes(SandboxError):
    code = "too_many_sandboxes"
    http_status = TooManyRequests.http_status


class ShuttingDown(Unavailable):
    code = "server_shutdown"


class PreviewNotReady(SandboxError):
    code = "preview_not_ready"
    http_status = Unavailable.http_status


class PromptTooLarge(InvalidRequest):
    code = "prompt_too_large"


class TooManyMessages(InvalidRequest):
    code = "too_many_messages"


class ImagesNotRead(InvalidRequest):
    code = "images_not_supported"


class Draining(Unavailable):
    code = "replica_draining"


def run_in_flight(run_id: str) -> RunInFlight:
    return RunInFlight(
        f"Run {run_id} is still changing this project; wait for it to end "
        f"(GET /api/runs/{run_id}/events) or cancel it "
        f"(POST /api/runs/{run_id}/cancel), then send this again."
    )
