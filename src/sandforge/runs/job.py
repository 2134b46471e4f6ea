"""What the supervisor hands a worker: the request plus everything it decided beforehand."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import BaseModel

from .request import ChatMessageIn, GenerationRequest

Flow = Literal["sandbox", "persistent"]


class RunJob(BaseModel):
    run_id: str
    request: GenerationRequest
    project_id: str
    flow: Flow
    provider: str
    preview_token: str
    """The project's; its preview URL is stable across sandboxes."""
    public: bool = False
    history: list[ChatMessageIn]
    """Earlier turns, from the store for a follow-up, else from the request."""
    sandbox_id: str | None = None
    """Continue in this sandbox (it exists)."""
    seed_files_b64: dict[str, str] | None = None
    """Rebuild: the project's stored files, for a fresh sandbox."""
    isolated: bool = True
    isolation_problem: str = ""
    """Why sandboxes run without full isolation here, when they do."""

    @property
    def seed_files(self) -> dict[str, bytes] | None:
        if self.seed_files_b64 is None:
            return None
        return {path: base64.b64decode(data) for path, data in self.seed_files_b64.items()}

    @staticmethod
    def encode_files(files: dict[str, bytes]) -> dict[str, str]:
        return {path: base64.b64encode(data).decode() for path, data in files.items()}
