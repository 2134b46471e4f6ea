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
from ..sandbox import Sandbox, SandboxError, SandboxProvider, SandboxSpec, SandboxState
from ..sandbox.http import wait_until_ready
from ..templates import ProjectTemplate, get_template
from .request import GenerationRequest

DEV_PROCESS = "dev"
LOG_TAIL_LINES = 20


class PipelineError(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RunContext:
    run_id: str
    settings: Settings
    provider: SandboxProvider
    model: ModelChoice
    isolated: bool = True


def _tail(log: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(log.strip().splitlines()[-lines:])


async def _open_sandbox(request: GenerationRequest, ctx: RunContext) -> Sandbox:
    if request.sandboxId:
        sandbox = await ctx.provider.get(request.sandboxId)
        if (await sandbox.info()).state != SandboxState.STARTED:
            await sandbox.start()
        return sandbox
    labels = {"sandforge": "1", "run": ctx.run_id}
    if request.projectName:
        labels["project"] = request.projectName
    return await ctx.provider.create(SandboxSpec(labels=labels))


async def _write_starter(
    sandbox: Sandbox, template: ProjectTemplate, request: GenerationRequest
) -> None:
    title = request.projectName or derive_title(request.prompt)
    for path, content in template.starter(title=title, heading=title, description="").items():
        await sandbox.write_file(path, content.encode())


async def run_pipeline(request: GenerationRequest, ctx: RunContext) -> AsyncIterator[Event]:
    template = get_template(request.projectType)
    sandbox_id: str | None = None
    try:
        if not ctx.isolated:
            yield progress(
                "creating",
                "WARNING: bubblewrap is unavailable and SANDFORGE_ALLOW_UNISOLATED=1 is set: "
                "generated code runs on this machine without isolation.",
            )
        yield progress("creating", f"Creating {ctx.provider.name} sandbox...")
        sandbox = await _open_sandbox(request, ctx)
        sandbox_id = sandbox.id
        yield progress(
            "initializing",
            f"Sandbox {sandbox.id} is up; setting up a {template.name} project",
            sandbox.id,
        )
        if not request.sandboxId and not ctx.model.offline:
            await _write_starter(sandbox, template, request)

        tokens_used = 0
        if ctx.model.offline:
            yield progress(
                "generating", "No AI model is configured: writing the starter", sandbox.id
            )
            async for event in scaffold(sandbox, template, request.prompt):
                yield event
        else:
            assert ctx.model.model is not None
            yield progress("generating", f"Generating with {ctx.model.name}...", sandbox.id)
            builder = Builder(ctx.model.model, template, request.agents)
            history = [ChatMessage(m.role, m.content) for m in request.history]
            async for event in builder.run(sandbox, request.prompt, history):
                yield event
            tokens_used = builder.result.tokens_used

        files = [f for f in await sandbox.list_files() if not f.is_dir]
        yield progress("writing", f"{len(files)} files in {sandbox.project_dir}", sandbox.id)
        if not any(f.path == template.entry_file for f in files):
            raise PipelineError(
                f"The generation finished without {template.entry_file}, so there is nothing to "
                "preview. Try again, or ask for it explicitly in the prompt.",
                "missing_entry_file",
            )

        yield progress("starting", f"Starting the dev server: {template.dev_command}", sandbox.id)
        await sandbox.start_process(DEV_PROCESS, template.dev_command)
        preview_url = ctx.settings.preview_url(sandbox.id, template.port)
        yield progress("preview", f"Waiting for the dev server at {preview_url}", sandbox.id)
        readiness = await wait_until_ready(
            sandbox, template.port, DEV_PROCESS, ctx.settings.dev_server_ready_timeout_s
        )
        if not readiness.ready:
            what = (
                "exited"
                if readiness.crashed
                else f"did not answer within {ctx.settings.dev_server_ready_timeout_s:.0f}s"
            )
            raise PipelineError(
                f"The dev server {what}. Last lines of its log:\n{_tail(readiness.log_tail)}",
                "dev_server_failed",
            )
        info = await sandbox.info()
        yield progress("complete", "Preview ready", sandbox.id)
        yield CompleteEvent(
            data=CompleteData(
                success=True,
                sandboxId=sandbox.id,
                projectDir=sandbox.project_dir,
                previewUrl=preview_url,
                accessToken=None if info.public else info.preview_token,
                tokensUsed=tokens_used,
                message=f"Your app is live at {preview_url}",
                runId=ctx.run_id,
                model=ctx.model.name,
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
