"""One generation, as events: open → starter → model → files → dev server → check → complete.

The two flows branch explicitly. The sandbox flow works in a sandbox and serves it
with a dev server; the persistent flow edits the project's stored files and the
preview serves them straight from the store. Both share the model's turn, the
entry-file check, the rendered check and the `complete` event.

The pipeline only yields events. Deleting a failed run's sandbox is the supervisor's
job, because only the supervisor also sees a worker that died.
"""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..agent.builder import Builder
from ..agent.edits import ProjectFiles
from ..agent.models import ModelChoice
from ..agent.offline import derive_title, scaffold
from ..config import Settings
from ..errors import SandforgeError
from ..events import CompleteData, CompleteEvent, Event, error, progress
from ..projects.files import StoredFiles
from ..projects.serving import (
    ensure_serving,
    install_dependencies,
    open_or_rebuild,
    project_spec,
    start_dev_server,
)
from ..render import check_render, find_chromium
from ..sandbox import Sandbox, SandboxProvider
from ..templates import ProjectTemplate, get_template
from .job import RunJob


class MissingEntryFile(SandforgeError):
    code = "missing_entry_file"
    http_status = 422


@dataclass(frozen=True)
class PipelineInputs:
    job: RunJob
    settings: Settings
    model: ModelChoice

    @property
    def template(self) -> ProjectTemplate:
        return get_template(self.job.project_type)

    @property
    def preview_url(self) -> str:
        return self.settings.preview_url(self.job.project_id, self.template.port)


@dataclass
class TurnOutcome:
    tokens_used: int = 0
    extra: dict[str, Any] | None = None
    """The `complete` event's extension fields the model's turn reported."""


async def run_pipeline(
    inputs: PipelineInputs, provider: SandboxProvider, stored: StoredFiles | None
) -> AsyncIterator[Event]:
    """The run's events; `stored` is the persistent flow's file store (None for a sandbox)."""
    sandbox_id: str | None = None
    try:
        if inputs.job.flow == "persistent":
            assert stored is not None
            steps = _persistent_flow(inputs, stored)
        else:
            steps = _sandbox_flow(inputs, provider)
        async for event in steps:
            if event.type == "progress" and event.data.sandboxId:
                sandbox_id = event.data.sandboxId
            yield event
    except SandforgeError as exc:
        yield _with_sandbox(error(exc.message, code=exc.code), sandbox_id)
    except Exception as exc:
        yield _with_sandbox(
            error(f"{type(exc).__name__}: {exc}", code="internal", stack=traceback.format_exc()),
            sandbox_id,
        )


async def _sandbox_flow(inputs: PipelineInputs, provider: SandboxProvider) -> AsyncIterator[Event]:
    job, template, settings = inputs.job, inputs.template, inputs.settings
    if job.isolation_problem:
        yield progress(
            "creating",
            "WARNING: SANDFORGE_ALLOW_UNISOLATED=1 is set and sandboxes are not fully isolated "
            f"here, so generated code runs with weaker protection: {job.isolation_problem}",
        )
    spec = project_spec(template, settings, job.project_id, job.run_id)
    if job.new_project:
        yield progress("creating", f"Creating {provider.name} sandbox...")
        sandbox = await provider.create(spec)
    else:
        if job.sandbox_id is not None:
            yield progress("creating", f"Continuing in sandbox {job.sandbox_id}", job.sandbox_id)
        else:
            yield progress(
                "creating", "The project's sandbox is gone; rebuilding it from its files"
            )
        sandbox, _ = await open_or_rebuild(provider, job.sandbox_id, spec, job.seed_files)
    if not job.new_project:
        yield progress("initializing", f"Sandbox {sandbox.id} is up", sandbox.id)
        await ensure_serving(sandbox, template, settings.dev_server_ready_timeout_s)
    else:
        yield progress(
            "initializing",
            f"Setting up a {template.name} project in {sandbox.project_dir}",
            sandbox.id,
        )
    if job.new_project and not inputs.model.offline:
        await _write_starter(sandbox, template, job)
    turn = TurnOutcome()
    async for event in _model_turn(inputs, sandbox, sandbox, turn):
        yield event
    async for event in _check_files(sandbox, template, sandbox.id):
        yield event
    yield progress("starting", f"Starting the dev server: {template.dev_command}", sandbox.id)
    await install_dependencies(sandbox, template)
    yield progress("preview", f"Waiting for the dev server at {inputs.preview_url}", sandbox.id)
    await start_dev_server(sandbox, template, settings.dev_server_ready_timeout_s)
    async for event in _finish(inputs, turn, sandbox.project_dir, sandbox.id):
        yield event


async def _persistent_flow(inputs: PipelineInputs, stored: StoredFiles) -> AsyncIterator[Event]:
    job, template = inputs.job, inputs.template
    yield progress("creating", "Persistent flow: files are saved to the database, no sandbox")
    new_project = not await stored.list_files()
    yield progress("initializing", f"Setting up a {template.name} project")
    if new_project and not inputs.model.offline:
        await _write_starter(stored, template, job)
    turn = TurnOutcome()
    async for event in _model_turn(inputs, stored, None, turn):
        yield event
    async for event in _check_files(stored, template, None):
        yield event
    yield progress("starting", "Serving the stored files; no dev server needed")
    yield progress("preview", f"Preview at {inputs.preview_url}")
    async for event in _finish(inputs, turn, "/", None):
        yield event


async def _write_starter(files: ProjectFiles, template: ProjectTemplate, job: RunJob) -> None:
    title = job.request.projectName or derive_title(job.request.prompt)
    for path, content in template.starter(title=title, heading=title, description="").items():
        await files.write_file(path, content.encode())


async def _model_turn(
    inputs: PipelineInputs, files: ProjectFiles, sandbox: Sandbox | None, turn: TurnOutcome
) -> AsyncIterator[Event]:
    """The model's turn over the files (or the offline scaffolder's), filling in `turn`."""
    job, template = inputs.job, inputs.template
    sandbox_id = sandbox.id if sandbox is not None else None
    if inputs.model.offline:
        yield progress("generating", "No AI model is configured: writing the starter", sandbox_id)
        async for event in scaffold(files, template, job.request.prompt):
            yield event
        return
    assert inputs.model.model is not None
    yield progress("generating", f"Generating with {inputs.model.name}...", sandbox_id)
    builder = Builder(inputs.model.model, template, job.request.agents)
    async for event in builder.run(files, job.request.prompt, job.history, sandbox=sandbox):
        yield event
    turn.tokens_used = builder.result.tokens_used
    turn.extra = builder.result.complete_fields()


async def _check_files(
    files: ProjectFiles, template: ProjectTemplate, sandbox_id: str | None
) -> AsyncIterator[Event]:
    listed = [f for f in await files.list_files() if not f.is_dir]
    yield progress("writing", f"{len(listed)} files in the project", sandbox_id)
    if not any(f.path == template.entry_file for f in listed):
        raise MissingEntryFile(
            f"The generation finished without {template.entry_file}, so there is nothing to "
            "preview. Try again, or ask for it explicitly in the prompt."
        )


async def _finish(
    inputs: PipelineInputs, turn: TurnOutcome, project_dir: str, sandbox_id: str | None
) -> AsyncIterator[Event]:
    """The rendered check, then `complete`."""
    job, settings = inputs.job, inputs.settings
    render = None
    chromium = find_chromium(settings.chromium_path) if settings.render_check else None
    if chromium is not None:
        yield progress("preview", "Checking the rendered page in Chromium", sandbox_id)
        report = await check_render(
            inputs.preview_url if job.public else f"{inputs.preview_url}?token={job.preview_token}",
            settings.data_dir / "screenshots" / f"{job.run_id}.png",
            chromium,
        )
        if report.screenshot:
            report.screenshot = f"/api/runs/{job.run_id}/screenshot"
        render = report.to_json()
        yield progress("preview", report.summary(), sandbox_id)
    yield progress("complete", "Preview ready", sandbox_id)
    yield CompleteEvent(
        data=CompleteData(
            success=True,
            sandboxId=sandbox_id or "",
            projectDir=project_dir,
            previewUrl=inputs.preview_url,
            accessToken=None if job.public else job.preview_token,
            tokensUsed=turn.tokens_used,
            message=f"Your app is live at {inputs.preview_url}",
            runId=job.run_id,
            projectId=job.project_id,
            model=inputs.model.name,
            render=render,
            **(turn.extra or {}),
        )
    )


def _with_sandbox(event: Event, sandbox_id: str | None) -> Event:
    if sandbox_id is not None and event.type == "error":
        event.data.sandboxId = sandbox_id
    return event
