"""One generation: sandbox → template → agent → dev server → ready → complete.

The pipeline only yields events. Deleting a failed run's sandbox is the
supervisor's job, because only the supervisor also sees a child that died.
"""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..agent.builder import Builder, ChatMessage
from ..agent.errors import ModelCallError
from ..agent.models import ModelChoice
from ..agent.offline import derive_title, scaffold
from ..config import Settings
from ..events import CompleteData, CompleteEvent, Event, error, progress
from ..render import check_render, find_chromium
from ..sandbox import Sandbox, SandboxError, SandboxProvider, SandboxSpec
from ..templates import ProjectTemplate, get_template
from .devserver import (
    ensure_serving,
    install_dependencies,
    project_spec,
    rebuild,
    start_dev_server,
)
from .job import RunJob


class PipelineError(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RunContext:
    job: RunJob
    settings: Settings
    provider: SandboxProvider
    model: ModelChoice
    workspace: Sandbox | None = None
    """The persistent flow's stored workspace; None in the sandbox flow."""


def sandbox_spec(ctx: RunContext) -> SandboxSpec:
    job = ctx.job
    labels = {"sandforge": "1", "run": job.run_id, "project": job.project_id}
    return project_spec(get_template(job.request.projectType), ctx.settings, labels)


async def _open_sandbox(ctx: RunContext) -> AsyncIterator[Event | Sandbox]:
    job = ctx.job
    if ctx.workspace is not None:
        yield progress("creating", "Persistent flow: files are saved to the database, no sandbox")
        yield ctx.workspace
        return
    if not job.isolated:
        yield progress(
            "creating",
            "WARNING: SANDFORGE_ALLOW_UNISOLATED=1 is set and sandboxes are not fully isolated "
            f"here, so generated code runs with weaker protection: {job.isolation_problem}",
        )
    if job.sandbox_id:
        yield progress("creating", f"Continuing in sandbox {job.sandbox_id}", job.sandbox_id)
        yield await ctx.provider.get(job.sandbox_id)
        return
    seed = job.seed_files
    if seed is not None:
        yield progress(
            "creating",
            f"The project's sandbox is gone; rebuilding it from {len(seed)} stored files...",
        )
        yield await rebuild(ctx.provider, sandbox_spec(ctx), seed)
        return
    yield progress("creating", f"Creating {ctx.provider.name} sandbox...")
    yield await ctx.provider.create(sandbox_spec(ctx))


async def _write_starter(sandbox: Sandbox, template: ProjectTemplate, job: RunJob) -> None:
    title = job.request.projectName or derive_title(job.request.prompt)
    for path, content in template.starter(title=title, heading=title, description="").items():
        await sandbox.write_file(path, content.encode())


def _sandbox_id(sandbox: Sandbox, ctx: RunContext) -> str | None:
    return None if ctx.workspace is not None else sandbox.id


async def run_pipeline(ctx: RunContext) -> AsyncIterator[Event]:
    job = ctx.job
    request = job.request
    template = get_template(request.projectType)
    sandbox_id: str | None = None
    try:
        sandbox: Sandbox | None = None
        async for item in _open_sandbox(ctx):
            if isinstance(item, Sandbox):
                sandbox = item
            else:
                yield item
        assert sandbox is not None
        sandbox_id = _sandbox_id(sandbox, ctx)
        new_project = not job.sandbox_id and job.seed_files is None
        if sandbox_id and not new_project:
            yield progress("initializing", f"Sandbox {sandbox.id} is up", sandbox_id)
            await ensure_serving(sandbox, template, ctx.settings.dev_server_ready_timeout_s)
        else:
            yield progress(
                "initializing",
                f"Setting up a {template.name} project in {sandbox.project_dir}",
                sandbox_id,
            )
        if new_project and not ctx.model.offline:
            await _write_starter(sandbox, template, job)

        tokens_used = 0
        if ctx.model.offline:
            yield progress(
                "generating", "No AI model is configured: writing the starter", sandbox_id
            )
            async for event in scaffold(sandbox, template, request.prompt):
                yield event
        else:
            assert ctx.model.model is not None
            yield progress("generating", f"Generating with {ctx.model.name}...", sandbox_id)
            builder = Builder(ctx.model.model, template, request.agents)
            history = [ChatMessage(m.role, m.content) for m in job.history]
            async for event in builder.run(sandbox, request.prompt, history):
                yield event
            tokens_used = builder.result.tokens_used

        files = [f for f in await sandbox.list_files() if not f.is_dir]
        yield progress("writing", f"{len(files)} files in the project", sandbox_id)
        if not any(f.path == template.entry_file for f in files):
            raise PipelineError(
                f"The generation finished without {template.entry_file}, so there is nothing to "
                "preview. Try again, or ask for it explicitly in the prompt.",
                "missing_entry_file",
            )

        preview_url = ctx.settings.preview_url(job.project_id, template.port)
        if sandbox_id is None:
            yield progress("starting", "Serving the stored files; no dev server needed")
            yield progress("preview", f"Preview at {preview_url}")
        else:
            yield progress(
                "starting", f"Starting the dev server: {template.dev_command}", sandbox_id
            )
            await install_dependencies(sandbox, template)
            yield progress("preview", f"Waiting for the dev server at {preview_url}", sandbox_id)
            await start_dev_server(sandbox, template, ctx.settings.dev_server_ready_timeout_s)
        render = None
        chromium = find_chromium(ctx.settings.chromium_path) if ctx.settings.render_check else None
        if chromium is not None:
            yield progress("preview", "Checking the rendered page in Chromium", sandbox_id)
            report = await check_render(
                preview_url if job.public else f"{preview_url}?token={job.preview_token}",
                ctx.settings.data_dir / "screenshots" / f"{job.run_id}.png",
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
                projectDir=sandbox.project_dir,
                previewUrl=preview_url,
                accessToken=None if job.public else job.preview_token,
                tokensUsed=tokens_used,
                message=f"Your app is live at {preview_url}",
                runId=job.run_id,
                projectId=job.project_id,
                model=ctx.model.name,
                render=render,
                **(builder.result.complete_fields() if not ctx.model.offline else {}),
            )
        )
    except PipelineError as exc:
        yield _with_sandbox(error(str(exc), code=exc.code), sandbox_id)
    except ModelCallError as exc:
        # The model failed for good (bad key, retries exhausted...): the message names the
        # provider, the status and the fix.
        yield _with_sandbox(error(str(exc), code=exc.code), sandbox_id)
    except SandboxError as exc:
        yield _with_sandbox(error(str(exc), code=exc.code), sandbox_id)
    except Exception as exc:
        yield _with_sandbox(
            error(f"{type(exc).__name__}: {exc}", code="internal", stack=traceback.format_exc()),
            sandbox_id,
        )


def _with_sandbox(event: Event, sandbox_id: str | None) -> Event:
    if sandbox_id is not None and event.type == "error":
        event.data.sandboxId = sandbox_id
    return event
