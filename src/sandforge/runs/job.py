"""What the supervisor hands a worker: the request plus everything decided beforehand."""

from __future__ import annotations

import base64

from pydantic import BaseModel, Field

from ..agent.prompts import hand_edits_note, picked_elements_note
from ..chat import ChatMessage
from ..config import SandboxProviderName
from ..projects.serving import SandboxResources
from ..store.records import Flow
from .budget import Budget
from .request import GenerationRequest


class RunJob(BaseModel):
    run_id: str
    request: GenerationRequest
    project_id: str
    project_type: str
    """The project's type (a follow-up's request may leave it at the default)."""
    flow: Flow
    provider: SandboxProviderName
    preview_token: str
    """The project's; its preview URL is stable across sandboxes."""
    public: bool = False
    history: list[ChatMessage]
    """Earlier turns, from the store for a follow-up, else from the request."""
    sandbox_id: str | None = None
    """Continue in this sandbox (it existed when the run was planned)."""
    seed_files_b64: dict[str, str] | None = None
    """Rebuild: the project's stored files, for a fresh sandbox."""
    isolation_problem: str = ""
    """Why sandboxes run without full isolation here, when they do (empty when isolated)."""
    budgets: list[Budget] = []
    """The spending budgets this run counts against, with what was spent before it."""
    resources: SandboxResources | None = None
    """The project's sandbox settings, for a sandbox this run creates."""
    app_env: dict[str, str] = Field(default_factory=dict, repr=False)
    """The app's environment (decrypted): for the dev server only, never the model."""
    hand_edited: list[str] = []
    """Files the user edited by hand since the project's last run, for the model to respect."""

    @property
    def model_prompt(self) -> str:
        """The prompt as the model reads it: the user's, then the elements they pointed at and
        the files they edited by hand since its last turn."""
        notes = [self.request.prompt]
        if self.request.elements:
            picked = [(e.selector, e.text, e.file, e.line) for e in self.request.elements]
            notes.append(picked_elements_note(picked))
        if self.hand_edited:
            notes.append(hand_edits_note(self.hand_edited))
        return "\n\n".join(notes)

    @property
    def new_project(self) -> bool:
        return self.sandbox_id is None and self.seed_files_b64 is None

    async def seed_files(self) -> dict[str, bytes]:
        return {path: base64.b64decode(data) for path, data in (self.seed_files_b64 or {}).items()}

    @staticmethod
    def encode_files(files: dict[str, bytes]) -> dict[str, str]:
        return {path: base64.b64encode(data).decode() for path, data in files.items()}
