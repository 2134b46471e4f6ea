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

from ..agent.models import allowed_model_name
from ..agent.offline import derive_title
from ..chat import ChatMessage
from ..config import Settings
from ..errors import Conflict, InvalidRequest, TooManyRequests, Unavailable
from ..ids import Kind, kind_of, new_id
from ..runs.budget import budgets_for
from ..runs.job import RunJob
from ..runs.request import GenerationRequest
from ..runs.supervisor import LiveRun, Supervisor
from ..sandbox import (
    Sandbox,
    SandboxError,
    SandboxInfo,
    SandboxNotFound,
    SandboxProvider,
    SandboxState,
)
from ..sandbox.fleet import SandboxFleet
from ..store.errors import ProjectNotFound
from ..store.records import Flow, ProjectRecord, RunRecord, ShareLinkRecord, VersionRecord
from ..store.repo import Store
from ..templates import get_template
from .serving import ensure_serving, open_or_rebuild, project_spec, start_dev_server
from .settings import ProjectConfig, SettingsUpdate
from .versions import git_commit, replace_files

log = logging.getLogger(__name__)


class RunInFlight(Conflict):
    code = "run_in_flight"


class TooManySandboxes(SandboxError):
    code = "too_many_sandboxes"
    http_status = TooManyRequests.http_status


class ShuttingDown(Unavailable):
    code = "server_shutdown"


class PromptTooLarge(InvalidRequest):
    code = "prompt_too_large"


class TooManyMessages(InvalidRequest):
    code = "too_many_messages"


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
        self._idle_stopper: asyncio.Task[None] | None = None
        self._idle_deleter: asyncio.Task[None] | None = None
        self.accepting = True
        """False once the server is shutting down: no new run starts."""

    async def start(self) -> None:
        if self.settings.idle_stop_minutes > 0:
            self._idle_stopper = asyncio.create_task(self._stop_idle_sandboxes())
        if self.settings.idle_delete_days > 0:
            self._idle_deleter = asyncio.create_task(self._delete_stopped_sandboxes())

    async def aclose(self) -> None:
        for task in (self._idle_stopper, self._idle_deleter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

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

    async def start_run(self, request: GenerationRequest, flow: Flow) -> LiveRun:
        """A new project's first turn, or a follow-up of the project the request names."""
        if not self.accepting:
            raise ShuttingDown(
                "The server is shutting down and starts no new runs; send this again once it "
                "is back."
            )
        self.check_request(request)
        follow_up = True
        if request.projectId:
            project = await self.store.get_project(request.projectId)
        elif request.sandboxId:
            project = await self.store.project_by_sandbox(request.sandboxId)
        else:
            follow_up = False
            provider = self.fleet.check_provider(request.sandbox)
            project = await self.store.create_project(
                name=request.projectName or derive_title(request.prompt),
                project_type=request.projectType,
                flow=flow,
                agents=request.agents,
                provider=provider,
            )
        async with self._locks[project.id]:
            return await self._start_locked(project, request, follow_up)

    async def _start_locked(
        self, project: ProjectRecord, request: GenerationRequest, follow_up: bool
    ) -> LiveRun:
        self.refuse_if_busy(project.id)
        provider = self.fleet.provider(project.provider)
        history = request.history
        sandbox_id, seed = None, None
        if follow_up:
            history = await self.store.history(project.id)
            sandbox_id, seed = await self._plan_sandbox(project)
        if project.flow == "sandbox" and sandbox_id is None:
            await self._check_capacity()
        job = RunJob(
            run_id=new_id("run"),
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
        )
        await self.store.create_run(job.run_id, project.id, request.model_dump())
        await self.store.add_message(project.id, job.run_id, "user", request.prompt)
        return self.supervisor.start(job, provider)

    def refuse_if_busy(self, project_id: str) -> None:
        active = self.supervisor.active_run(project_id)
        if active is not None:
            raise RunInFlight(
                f"Run {active.id} is still changing this project; wait for it to end "
                f"(GET /api/runs/{active.id}/events) or cancel it "
                f"(POST /api/runs/{active.id}/cancel), then send this again."
            )

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

    # -- versions ------------------------------------------------------------------------------

    async def restore(self, project_id: str, number: int) -> VersionRecord:
        """Make version `number`'s files current again, as a new version: nothing is lost."""
        async with self._locks[project_id]:
            project = await self.store.get_project(project_id)
            self.refuse_if_busy(project_id)
            files = await self.store.version_files(project_id, number)
            message = f"Restore version {number}"
            commit = None
            if project.flow == "sandbox":
                sandbox = await self._serving_locked(project)
                await replace_files(sandbox, files)
                commit = await git_commit(sandbox, message)
            return await self.store.save_version(project_id, files, message=message, commit=commit)

    # -- serving -------------------------------------------------------------------------------

    async def serving_sandbox(self, project_id: str) -> Sandbox:
        """The project's sandbox with its dev server up: started, or rebuilt from stored files."""
        async with self._locks[project_id]:
            return await self._serving_locked(await self.store.get_project(project_id))

    async def _serving_locked(self, project: ProjectRecord) -> Sandbox:
        if project.sandbox_id:
            # Touched first, so the idle stop does not take back what this starts.
            self.fleet.touch(project.sandbox_id)
        sandbox = await self.project_sandbox(project)
        if sandbox is not None and self.supervisor.active_run(project.id) is not None:
            return sandbox  # the run brings it up
        if sandbox is None or (await sandbox.info()).state != SandboxState.STARTED:
            await self._check_capacity()
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

    async def _check_capacity(self) -> None:
        """Refuse to start one more sandbox than SANDFORGE_MAX_SANDBOXES."""
        running = await self.fleet.running_count()
        limit = self.settings.max_sandboxes
        if running >= limit:
            raise TooManySandboxes(
                f"{running} sandboxes are running and the limit is {limit} "
                "(SANDFORGE_MAX_SANDBOXES). Stop or delete one on the sandboxes page "
                "(or `sandforge sandboxes list`), or raise the limit."
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
                await self._delete_sandbox(project, sandbox)
            elif (await sandbox.info()).state == SandboxState.STARTED:
                template = get_template(project.project_type)
                await start_dev_server(
                    sandbox,
                    template,
                    self.settings.dev_server_ready_timeout_s,
                    await self.config.app_env(project_id),
                )

    async def _delete_sandbox(self, project: ProjectRecord, sandbox: Sandbox) -> None:
        """Delete a project's sandbox; its files are in the store, and the next use of the
        project rebuilds one from them."""
        await self.fleet.delete(sandbox)
        self.fleet.changed(project.id)
        await self.store.record_sandbox(sandbox.id, sandbox.provider, project.id, "deleted")

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
        """Delete a project, its sandbox and everything stored; a run in flight is cancelled."""
        active = self.supervisor.active_run(project_id)
        if active is not None:
            await self.supervisor.cancel(active.id)
        async with self._locks[project_id]:
            project = await self.store.get_project(project_id)
            sandbox = await self.project_sandbox(project)
            if sandbox is not None:
                await self.fleet.delete(sandbox)
            self.fleet.changed(project_id)
            await self.store.delete_project(project_id)
        self._locks.pop(project_id, None)

    # -- idleness ------------------------------------------------------------------------------

    async def _stop_idle_sandboxes(self) -> None:
        """Stop local sandboxes idle for `idle_stop_minutes`; Daytona has its own auto-stop."""
        idle_after = self.settings.idle_stop_minutes * 60
        while True:
            await asyncio.sleep(min(60.0, max(idle_after / 4, 0.05)))
            try:
                await self._stop_idle_once(idle_after)
            except Exception:
                log.exception("the idle stop failed; it tries again later")

    async def _stop_idle_once(self, idle_after: float) -> None:
        busy = self.supervisor.busy_sandboxes()
        provider = self.fleet.provider("local")
        for info in await provider.list():
            if info.state != SandboxState.STARTED or info.id in busy:
                continue
            if self.fleet.idle_for(info) < idle_after:
                continue
            # Under the project's lock, so a preview starting it meanwhile wins.
            async with self._locks[info.labels.get("project", info.id)]:
                if self.fleet.idle_for(info) < idle_after:
                    continue
                with contextlib.suppress(SandboxError):
                    await self.fleet.stop(await provider.get(info.id))

    async def _delete_stopped_sandboxes(self) -> None:
        """Delete sandboxes stopped for `idle_delete_days` (SANDFORGE_IDLE_DELETE_DAYS)."""
        stopped_for = self.settings.idle_delete_days * 86400
        while True:
            await asyncio.sleep(min(3600.0, max(stopped_for / 4, 0.05)))
            try:
                await self.delete_stopped_sandboxes(stopped_for)
            except Exception:
                log.exception("deleting stopped sandboxes failed; it tries again later")

    async def delete_stopped_sandboxes(self, stopped_for_s: float) -> list[str]:
        """Delete the projects' sandboxes that have been stopped (and unused) for this long.

        Only a sandbox whose project has its files in the store goes: the project rebuilds
        one from them when it is opened again."""
        deleted = []
        for provider in self.fleet.configured():
            for info in await provider.list({"sandforge": "1"}):
                project_id = info.labels.get("project")
                if project_id is None or info.state == SandboxState.STARTED:
                    continue
                if await self._unused_for(info, project_id) < stopped_for_s:
                    continue
                async with self._locks[project_id]:
                    if await self._deletable(info.id, project_id, provider):
                        project = await self.store.get_project(project_id)
                        await self._delete_sandbox(project, await provider.get(info.id))
                        deleted.append(info.id)
        return deleted

    async def _unused_for(self, info: SandboxInfo, project_id: str) -> float:
        """Seconds since the sandbox was last used: its last touch, or its project's last
        change (a saved version), whichever is later."""
        with contextlib.suppress(ProjectNotFound):
            project = await self.store.get_project(project_id)
            return min(self.fleet.idle_for(info), time.time() - project.updated_at)
        return self.fleet.idle_for(info)

    async def _deletable(self, sandbox_id: str, project_id: str, provider: SandboxProvider) -> bool:
        """Still stopped, no run in it, and its project's files are in the store."""
        if self.supervisor.active_run(project_id) is not None:
            return False
        try:
            sandbox = await provider.get(sandbox_id)
            await self.store.get_project(project_id)
        except (SandboxNotFound, ProjectNotFound):
            return False
        if (await sandbox.info()).state == SandboxState.STARTED:
            return False
        return bool(await self.store.file_sizes(project_id))
