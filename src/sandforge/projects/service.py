"""What can happen to a project, with its rules: the API's only way in.

Every change to a project's files happens under that project's lock: starting a
run, restoring a version, rebuilding its sandbox, deleting it, stopping it for
idleness. So a restore cannot slip in while a run is being started, and one
project never has two runs changing its files at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass

from ..agent.models import allowed_model_name, reads_images
from ..agent.offline import derive_title
from ..chat import ChatMessage
from ..config import Settings
from ..errors import InvalidRequest
from ..events import ProgressData, ProgressEvent
from ..ids import Kind, kind_of, new_id
from ..runs.budget import budgets_for
from ..runs.job import RunJob
from ..runs.replica import Replica
from ..runs.request import GenerationRequest
from ..runs.supervisor import LiveRun, Supervisor
from ..sandbox import (
    Sandbox,
    SandboxInfo,
    SandboxNotFound,
    SandboxState,
)
from ..sandbox.fleet import SandboxFleet
from ..store.records import (
    Flow,
    ProjectRecord,
    RunRecord,
    ShareLinkRecord,
    VersionKind,
    VersionRecord,
)
from ..store.replicas import ClaimedRun
from ..store.repo import Store
from ..templates import get_template
from .errors import (
    Draining,
    ImagesNotRead,
    PreviewNotReady,
    PromptTooLarge,
    ShuttingDown,
    TooManyMessages,
    run_in_flight,
)
from .serving import ensure_serving, open_or_rebuild, project_spec, start_dev_server
from .settings import ProjectConfig, SettingsUpdate
from .timeline import hand_edited
from .upkeep import SandboxUpkeep
from .versions import git_commit, replace_files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartedRun:
    """A run accepted: live in this process, or queued for whichever replica takes it."""

    id: str
    project_id: str


@dataclass(frozen=True)
class Session:
    """Everything needed to reopen a project, found from the id of it, its run or sandbox."""

    kind: Kind
    project: ProjectRecord
    messages: list[ChatMessage]
    runs: list[RunRecord]
    sandbox: SandboxInfo | None
    sandbox_gone: bool


class Projects:
    def __init__(
        self, settings: Settings, store: Store, fleet: SandboxFleet, supervisor: Supervisor
    ) -> None:
        self.settings = settings
        self.store = store
        self.fleet = fleet
        self.supervisor = supervisor
        self.config = ProjectConfig(settings, store)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.upkeep = SandboxUpkeep(settings, store, fleet, supervisor, self._locks)
        self.accepting = True
        """False once the server is shutting down: no new run starts."""
        self._draining = False
        self.replica: Replica | None = None
        """With replicas: runs go to the shared queue, and whichever replica has room
        takes them (see `launch_claimed`)."""

    def attach_replica(self, replica: Replica) -> None:
        self.replica = replica
        replica.launch = self.launch_claimed

    async def start(self) -> None:
        self.upkeep.start()

    async def aclose(self) -> None:
        await self.upkeep.aclose()

    # -- runs ----------------------------------------------------------------------------------

    def check_request(self, request: GenerationRequest) -> None:
        """The rules a request must meet beyond its shape, before anything is created."""
        limit = self.settings.max_prompt_chars
        if len(request.prompt) > limit:
            raise PromptTooLarge(
                f"The prompt is {len(request.prompt)} characters; the limit is {limit} "
                "(SANDFORGE_MAX_PROMPT_CHARS)."
            )
        if len(request.messages) > self.settings.max_messages:
            raise TooManyMessages(
                f"{len(request.messages)} messages; the limit is {self.settings.max_messages}."
            )
        self.fleet.check_provider(request.sandbox)
        allowed_model_name(self.settings, request.model)

    async def start_run(self, request: GenerationRequest, flow: Flow) -> StartedRun:
        """A new project's first turn, or a follow-up of the project the request names."""
        if not self.accepting:
            raise ShuttingDown(
                "The server is shutting down and starts no new runs; send this again once it "
                "is back."
            )
        if self.replica is None and self.draining:
            raise Draining("This server is draining and starts no new runs.")
        self.check_request(request)
        follow_up = True
        if request.projectId:
            project = await self.store.get_project(request.projectId)
        elif request.sandboxId:
            project = await self.store.project_by_sandbox(request.sandboxId)
        else:
            follow_up = False
            provider = self.fleet.check_provider(request.sandbox)
            if request.images:  # refused before a project exists, so none is left behind
                await self._check_reads_images(request.model)
            project = await self.store.create_project(
                name=request.projectName or derive_title(request.prompt),
                project_type=request.projectType,
                flow=flow,
                agents=request.agents,
                provider=provider,
                # A first request's choice of model stays the project's for its follow-ups.
                model=request.model,
            )
        request = await self._with_project_model(project, request, follow_up)
        if self.replica is not None:
            return await self._enqueue(self.replica, project, request)
        async with self._locks[project.id]:
            # Read again under the lock: a delete that held it may have removed the project.
            project = await self.store.get_project(project.id)
            self.refuse_if_busy(project.id)
            job = await self._plan_job(project, request, follow_up, new_id("run"))
            await self.store.create_run(job.run_id, project.id, request.model_dump())
            run = await self._launch(project, job)
            return StartedRun(run.id, project.id)

    @property
    def draining(self) -> bool:
        return self.replica.draining if self.replica is not None else self._draining

    async def drain(self) -> None:
        """Start no new runs here; those in flight finish. With replicas, the others take
        the queue; alone, new runs are refused (503) until the server restarts."""
        if self.replica is not None:
            await self.replica.drain()
        self._draining = True

    async def _enqueue(
        self, replica: Replica, project: ProjectRecord, request: GenerationRequest
    ) -> StartedRun:
        """Queue the run; a replica with room plans and starts it (launch_claimed)."""
        affinity = None
        if project.provider == "local" and project.sandbox_id:
            affinity = await replica.sandbox_holder(project.id, project.sandbox_id)
        run_id = new_id("run")
        busy = await replica.enqueue(run_id, project.id, request.model_dump(), affinity)
        if busy is not None:
            raise run_in_flight(busy)
        return StartedRun(run_id, project.id)

    async def launch_claimed(self, claimed: ClaimedRun) -> None:
        """Start, here, a run this replica took from the queue."""
        request = GenerationRequest.model_validate(claimed.request)
        follow_up = bool(request.projectId or request.sandboxId)
        async with self._locks[claimed.project_id]:
            project = await self.store.get_project(claimed.project_id)
            job = await self._plan_job(project, request, follow_up, claimed.id)
            await self._launch(project, job)

    async def _launch(self, project: ProjectRecord, job: RunJob) -> LiveRun:
        await self.store.add_message(project.id, job.run_id, "user", job.request.prompt)
        return self.supervisor.start(job, self.fleet.provider(project.provider))

    async def _plan_job(
        self, project: ProjectRecord, request: GenerationRequest, follow_up: bool, run_id: str
    ) -> RunJob:
        """Everything decided before the run: its history, and the sandbox it continues in
        (or the stored files it rebuilds one from)."""
        provider = self.fleet.provider(project.provider)
        history = request.history
        sandbox_id, seed = None, None
        if follow_up:
            history = await self.store.history(project.id)
            sandbox_id, seed = await self._plan_sandbox(project)
        if project.flow == "sandbox" and sandbox_id is None:
            await self.upkeep.make_room()
        return RunJob(
            run_id=run_id,
            request=request,
            project_id=project.id,
            project_type=project.project_type,
            flow=project.flow,
            provider=provider.name,
            preview_token=project.preview_token,
            public=project.public,
            history=history,
            sandbox_id=sandbox_id,
            seed_files_b64=RunJob.encode_files(seed) if seed is not None else None,
            isolation_problem=self.fleet.isolation_problem,
            budgets=await budgets_for(self.settings, self.supervisor.ledger, project.id),
            resources=await self.config.resources(project.id),
            app_env=await self.config.app_env(project.id),
            hand_edited=await hand_edited(self.store, project.id) if follow_up else [],
        )

    async def _with_project_model(
        self, project: ProjectRecord, request: GenerationRequest, follow_up: bool
    ) -> GenerationRequest:
        """The request with the project's chosen model when it names none, and refused if it
        has images that model cannot read."""
        if request.model is None and project.model is not None:
            # Still within the allow-list (it may have shrunk since it was chosen).
            allowed_model_name(self.settings, project.model)
            request = request.model_copy(update={"model": project.model})
        if request.images and follow_up:
            await self._check_reads_images(request.model)
        return request

    async def _check_reads_images(self, model: str | None) -> None:
        # Building the model imports its SDK the first time: off the event loop.
        if not await asyncio.to_thread(reads_images, self.settings, model):
            name = allowed_model_name(self.settings, model)
            raise ImagesNotRead(
                f"The model {name} does not read images. Choose a model that does (Anthropic's "
                "and OpenAI's do) in the model picker, or send the prompt without images."
            )

    def refuse_if_busy(self, project_id: str) -> None:
        active = self.supervisor.active_run(project_id)
        if active is not None:
            raise run_in_flight(active.id)

    async def _plan_sandbox(
        self, project: ProjectRecord
    ) -> tuple[str | None, dict[str, bytes] | None]:
        """Continue in the project's sandbox, or rebuild it from the stored files."""
        if project.flow == "persistent":
            return None, None
        if project.sandbox_id:
            with contextlib.suppress(SandboxNotFound):
                await self.fleet.provider(project.provider).get(project.sandbox_id)
                return project.sandbox_id, None
        files = await self.store.files(project.id)
        return None, files if files else None

    async def update(
        self, project_id: str, *, name: str | None = None, model: str | None = None
    ) -> ProjectRecord:
        """Rename the project, or choose the model its runs use (`""`: the server's own)."""
        if name is not None and not name.strip():
            raise InvalidRequest("The name is empty; give the project a name.")
        if model:
            model = allowed_model_name(self.settings, model)
        return await self.store.update_project(
            project_id, name=name.strip() if name else None, model=model
        )

    # -- versions ------------------------------------------------------------------------------

    async def restore(self, project_id: str, number: int) -> VersionRecord:
        """Make version `number`'s files current again, as a new version: nothing is lost."""
        async with self._locks[project_id]:
            project = await self.store.get_project(project_id)
            self.refuse_if_busy(project_id)
            files = await self.store.version_files(project_id, number)
            sandbox = await self._changing_sandbox(project)
            if sandbox is not None:
                await replace_files(sandbox, files)
            version = await self._save_locked(
                project, sandbox, files, f"Restore version {number}", "restore"
            )
        self._announce(project_id, version, f"Restored version {number} as version")
        return version

    async def edit_file(self, project_id: str, path: str, content: bytes) -> VersionRecord:
        """The user's own change to one file: written where the project runs (its dev server
        reloads) and saved as a version marked as a manual edit."""
        async with self._locks[project_id]:
            project = await self.store.get_project(project_id)
            self.refuse_if_busy(project_id)
            files = {**await self.store.files(project_id), path: content}
            sandbox = await self._changing_sandbox(project)
            if sandbox is not None:
                await sandbox.write_file(path, content)
            version = await self._save_locked(project, sandbox, files, f"Edit {path}", "edit")
        self._announce(project_id, version, f"{path} edited by hand: version")
        return version

    async def _changing_sandbox(self, project: ProjectRecord) -> Sandbox | None:
        """Where a change outside a run is written besides the store: the project's sandbox
        (started, or rebuilt, with its dev server up); None for the persistent flow."""
        return await self._serving_locked(project) if project.flow == "sandbox" else None

    async def _save_locked(
        self,
        project: ProjectRecord,
        sandbox: Sandbox | None,
        files: dict[str, bytes],
        message: str,
        kind: VersionKind,
    ) -> VersionRecord:
        """Save `files` as the next version, committed to the sandbox's git history too."""
        commit = await git_commit(sandbox, message) if sandbox is not None else None
        return await self.store.save_version(
            project.id, files, message=message, commit=commit, kind=kind
        )

    def _announce(self, project_id: str, version: VersionRecord, what: str) -> None:
        """Tell everyone viewing the project (its live feed) about a version made outside a run."""
        message = f"{what} {version.number}"
        event = ProgressEvent(
            data=ProgressData(status="complete", message=message, version=version.number)
        )
        self.supervisor.feeds.notify(project_id, event)

    # -- serving -------------------------------------------------------------------------------

    async def serving_sandbox(self, project_id: str) -> Sandbox:
        """The project's sandbox with its dev server up: started, or rebuilt from stored files."""
        async with self._locks[project_id]:
            return await self._serving_locked(await self.store.get_project(project_id))

    async def _serving_locked(self, project: ProjectRecord) -> Sandbox:
        if project.sandbox_id:
            # Touched first, so the idle stop does not take back what this starts.
            self.fleet.touch(project.sandbox_id)
        run = self.supervisor.active_run(project.id)
        if run is not None:
            return await self._run_sandbox(project, run)
        sandbox = await self.project_sandbox(project)
        if sandbox is None or (await sandbox.info()).state != SandboxState.STARTED:
            await self.upkeep.make_room()
        template = get_template(project.project_type)
        if sandbox is None:
            provider = self.fleet.provider(project.provider)
            resources = await self.config.resources(project.id)
            sandbox, _ = await open_or_rebuild(
                provider,
                None,
                project_spec(template, self.settings, project.id, resources=resources),
                lambda: self.store.files(project.id),
            )
            self.fleet.touch(sandbox.id)
            await self.store.set_project_sandbox(project.id, sandbox.id)
            await self.store.record_sandbox(sandbox.id, provider.name, project.id, "started")
        await ensure_serving(
            sandbox,
            template,
            self.settings.dev_server_ready_timeout_s,
            await self.config.app_env(project.id),
        )
        return sandbox

    async def _run_sandbox(self, project: ProjectRecord, run: LiveRun) -> Sandbox:
        """The sandbox a run in flight works in (the run brings its dev server up). The run
        knows it before the store does: a new project's preview opens while the run is young."""
        sandbox_id = run.sandbox_id or project.sandbox_id
        with contextlib.suppress(SandboxNotFound):
            if sandbox_id is not None:
                return await self.fleet.provider(project.provider).get(sandbox_id)
        raise PreviewNotReady(
            f"Run {run.id} is still setting up this project's sandbox; the preview appears as "
            "soon as its dev server answers."
        )

    async def project_sandbox(self, project: ProjectRecord) -> Sandbox | None:
        """The project's sandbox if it still exists (running or not)."""
        if project.sandbox_id is None:
            return None
        try:
            return await self.fleet.provider(project.provider).get(project.sandbox_id)
        except SandboxNotFound:
            return None

    # -- settings ------------------------------------------------------------------------------

    async def update_settings(self, project_id: str, update: SettingsUpdate) -> None:
        """Store new settings and apply them: new resources rebuild the sandbox from the
        stored files (on its next use), a new environment restarts the dev server."""
        async with self._locks[project_id]:
            project = await self.store.get_project(project_id)
            self.refuse_if_busy(project_id)
            resources_changed, env_changed = await self.config.update(project_id, update)
            sandbox = await self.project_sandbox(project)
            if sandbox is None or not (resources_changed or env_changed):
                return
            if resources_changed:
                await self.upkeep.delete_sandbox(project, sandbox)
            elif (await sandbox.info()).state == SandboxState.STARTED:
                template = get_template(project.project_type)
                await start_dev_server(
                    sandbox,
                    template,
                    self.settings.dev_server_ready_timeout_s,
                    env=await self.config.app_env(project_id),
                )

    # -- sharing -------------------------------------------------------------------------------

    async def share(self, project_id: str, expires_in_s: float | None) -> ShareLinkRecord:
        """A new link to the project's preview, expiring after `expires_in_s` if given."""
        await self.store.get_project(project_id)
        expires_at = time.time() + expires_in_s if expires_in_s is not None else None
        link = await self.store.create_share_link(project_id, secrets.token_urlsafe(24), expires_at)
        self.fleet.changed(project_id)
        return link

    async def revoke_share(self, project_id: str, link_id: str) -> ShareLinkRecord:
        """The link stops opening the preview at once, for everyone who has it."""
        link = await self.store.revoke_share_link(project_id, link_id)
        self.fleet.changed(project_id)
        return link

    # -- reading and deleting ------------------------------------------------------------------

    async def session(self, any_id: str) -> Session:
        kind = kind_of(any_id) or "sandbox"
        if kind == "run":
            project = await self.store.get_project((await self.store.get_run(any_id)).project_id)
        elif kind == "sandbox":
            project = await self.store.project_by_sandbox(any_id)
        else:
            project = await self.store.get_project(any_id)
        sandbox = await self.project_sandbox(project)
        return Session(
            kind=kind,
            project=project,
            messages=await self.store.history(project.id),
            runs=await self.store.list_runs(project.id),
            sandbox=await sandbox.info() if sandbox is not None else None,
            sandbox_gone=project.sandbox_id is not None and sandbox is None,
        )

    async def delete(self, project_id: str) -> None:
        """Delete a project, its sandbox and everything stored; a run in flight is cancelled.
        The project's lock is held throughout, so no run or change starts on it meanwhile
        (one that waits for the lock then finds no project: a 404)."""
        async with self._locks[project_id]:
            project = await self.store.get_project(project_id)
            active = self.supervisor.active_run(project_id)
            if active is not None:
                await self.supervisor.cancel(active.id)
            sandbox = await self.project_sandbox(project)
            if sandbox is not None:
                await self.fleet.delete(sandbox)
            self.fleet.changed(project_id)
            await self.store.delete_project(project_id)
        self._locks.pop(project_id, None)
