"""One generation, as events: open → starter → model → files → dev server → check → complete.

The two flows branch explicitly. The sandbox flow works in a sandbox and serves it
with a dev server; the persistent flow edits the project's stored files and the
preview serves them straight from the store. Both share the model's turn, the
entry-file check, the rendered check and the `complete` event.

The pipeline only yields events. Deleting a failed run's sandbox is the supervisor's
job, because only the supervisor also sees a worker that died.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from ..agent.builder import Builder
from ..agent.edits import ProjectFiles
from ..agent.models import ModelChoice
from ..agent.offline import derive_title, scaffold
from ..chat import ChatMessage, PromptImage
from ..config import Settings
from ..errors import SandforgeError
from ..events import CompleteData, CompleteEvent, ErrorEvent, Event, error, progress
from ..projects.files import StoredFiles
from ..projects.serving import (
    confirm_serving,
    ensure_serving,
    open_or_rebuild,
    project_spec,
    serve_early,
    service_previews,
    startup_stamp,
)
from ..sandbox import Sandbox, SandboxProvider
from ..sandbox.metering import SandboxMeter
from ..templates import ProjectTemplate, get_template
from .budget import check as check_budgets
from .budget import remaining_usd
from .job import RunJob
from .repair import Findings, RenderCheck, Repairs, find_problems, repair_prompt
from .spend import RunSpend


class MissingEntryFile(SandforgeError):
    code = "missing_entry_file"
    http_status = 422


@dataclass(frozen=True)
class PipelineInputs:
    job: RunJob
    settings: Settings
    model: ModelChoice
    check: RenderCheck | None = None
    """The rendered check; None when it is off or unavailable."""

    @property
    def template(self) -> ProjectTemplate:
        return get_template(self.job.project_type)

    @property
    def preview_url(self) -> str:
        return self.settings.preview_url(self.job.project_id, self.template.port)


@dataclass
class TurnOutcome:
    """What the model's turns (the first, then each repair) add up to."""

    spend: RunSpend = field(default_factory=RunSpend)
    """Tokens, cost and sandbox time so far, which the budgets count."""
    meter: SandboxMeter = field(default_factory=SandboxMeter)
    conversation: list[ChatMessage] = field(default_factory=list)
    """This run's turns so far (prompt, answer, repair prompt, answer...): a repair turn
    sees what it was asked and what it did before."""
    limit_reached: str | None = None

    @property
    def text(self) -> str:
        """What the model said, all turns together."""
        return "".join(m.content for m in self.conversation if m.role == "assistant")


async def run_pipeline(
    inputs: PipelineInputs, provider: SandboxProvider, stored: StoredFiles | None
) -> AsyncIterator[Event]:
    """The run's events; `stored` is the persistent flow's file store (None for a sandbox)."""
    sandbox_id: str | None = None
    turn = TurnOutcome(spend=RunSpend(model=inputs.model.name))
    try:
        check_budgets(inputs.job.budgets, 0.0)
        if inputs.job.flow == "persistent":
            assert stored is not None
            steps = _persistent_flow(inputs, stored, turn)
        else:
            steps = _sandbox_flow(inputs, provider, turn)
        async for event in steps:
            if event.type == "progress" and event.data.sandboxId:
                sandbox_id = event.data.sandboxId
            yield event
    except SandforgeError as exc:
        yield await _failed(turn, error(exc.message, code=exc.code), sandbox_id)
    except Exception as exc:
        failure = error(
            f"{type(exc).__name__}: {exc}", code="internal", stack=traceback.format_exc()
        )
        yield await _failed(turn, failure, sandbox_id)
    finally:
        await turn.meter.stop()


async def _failed(turn: TurnOutcome, event: ErrorEvent, sandbox_id: str | None) -> Event:
    """The error event, with the sandbox it happened in and what the run used until then."""
    turn.spend.sandbox = await turn.meter.stop() or turn.spend.sandbox
    event.data.usage = turn.spend.error_usage()
    return _with_sandbox(event, sandbox_id)


async def _sandbox_flow(
    inputs: PipelineInputs, provider: SandboxProvider, turn: TurnOutcome
) -> AsyncIterator[Event]:
    job, template, settings = inputs.job, inputs.template, inputs.settings
    if job.isolation_problem:
        yield progress(
            "creating",
            "WARNING: SANDFORGE_ALLOW_UNISOLATED=1 is set and sandboxes are not fully isolated "
            f"here, so generated code runs with weaker protection: {job.isolation_problem}",
        )
    spec = project_spec(template, settings, job.project_id, job.run_id, job.resources)
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
    await turn.meter.start(sandbox)
    if job.new_project:
        stamp = await _lay_starter(inputs, sandbox)
        ready = f"Set up a {template.name} project in {sandbox.project_dir}"
    else:
        await ensure_serving(sandbox, template, settings.dev_server_ready_timeout_s, job.app_env)
        stamp = await startup_stamp(sandbox, template)
        ready = f"Sandbox {sandbox.id} is up"
    yield _initializing(inputs, ready, sandbox.id, live=stamp is not None)
    async for event in _model_turn(
        inputs, sandbox, sandbox, turn, job.model_prompt, job.request.prompt_images
    ):
        yield event
    async for event in _check_files(sandbox, template, sandbox.id):
        yield event
    # The dev server may have run all along: then these confirm it serves the final files.
    starting = "Starting" if stamp is None else "Checking"
    yield progress("starting", f"{starting} the dev server: {template.dev_command}", sandbox.id)
    yield progress("preview", f"Waiting for the dev server at {inputs.preview_url}", sandbox.id)
    await confirm_serving(
        sandbox, template, settings.dev_server_ready_timeout_s, stamp, job.app_env
    )
    async for event in _finish(inputs, turn, sandbox, sandbox):
        yield event


async def _lay_starter(inputs: PipelineInputs, sandbox: Sandbox) -> str | None:
    """A new project's starter, served at once; its dev server's startup stamp. None offline,
    where the scaffolder's own files are the whole run."""
    if inputs.model.offline:
        return None
    await _write_starter(sandbox, inputs.template, inputs.job)
    return await serve_early(
        sandbox, inputs.template, inputs.settings.dev_server_ready_timeout_s, inputs.job.app_env
    )


def _initializing(
    inputs: PipelineInputs, message: str, sandbox_id: str | None, live: bool
) -> Event:
    """`initializing`; with `live`, the preview already serves (before the model starts), and
    the event says where: it shows each file as it lands."""
    if not live:
        return progress("initializing", message, sandbox_id)
    job = inputs.job
    return progress(
        "initializing",
        f"{message}; live preview at {inputs.preview_url}",
        sandbox_id,
        preview_url=inputs.preview_url,
        access_token=None if job.public else job.preview_token,
    )


async def _persistent_flow(
    inputs: PipelineInputs, stored: StoredFiles, turn: TurnOutcome
) -> AsyncIterator[Event]:
    job, template = inputs.job, inputs.template
    yield progress("creating", "Persistent flow: files are saved to the database, no sandbox")
    new_project = not await stored.list_files()
    live = not new_project or not inputs.model.offline
    if new_project and live:
        await _write_starter(stored, template, job)
    yield _initializing(inputs, f"Set up a {template.name} project", None, live)
    async for event in _model_turn(
        inputs, stored, None, turn, job.model_prompt, job.request.prompt_images
    ):
        yield event
    async for event in _check_files(stored, template, None):
        yield event
    yield progress("starting", "Serving the stored files; no dev server needed")
    yield progress("preview", f"Preview at {inputs.preview_url}")
    async for event in _finish(inputs, turn, stored, None):
        yield event


async def _write_starter(files: ProjectFiles, template: ProjectTemplate, job: RunJob) -> None:
    title = job.request.projectName or derive_title(job.request.prompt)
    for path, content in template.starter(title=title, heading=title, description="").items():
        await files.write_file(path, content.encode())


async def _model_turn(
    inputs: PipelineInputs,
    files: ProjectFiles,
    sandbox: Sandbox | None,
    turn: TurnOutcome,
    prompt: str,
    images: tuple[PromptImage, ...] = (),
) -> AsyncIterator[Event]:
    """One turn of the model over the files (or the offline scaffolder's), added to `turn`."""
    job, template = inputs.job, inputs.template
    sandbox_id = sandbox.id if sandbox is not None else None
    if inputs.model.offline:
        yield progress("generating", "No AI model is configured: writing the starter", sandbox_id)
        async for event in scaffold(files, template, job.request.prompt):
            yield event
        return
    assert inputs.model.model is not None
    if not turn.conversation:
        yield progress("generating", f"Generating with {inputs.model.name}...", sandbox_id)
    history = [*job.history, *turn.conversation]
    builder = Builder(inputs.model.model, template, job.request.agents)
    spend_limit = remaining_usd(job.budgets, turn.spend.counted_cost)
    async for event in builder.run(
        files, prompt, history, sandbox=sandbox, images=images, spend_limit_usd=spend_limit
    ):
        yield event
    first = not turn.conversation
    turn.spend.add(builder.result)
    turn.conversation += [
        ChatMessage(role="user", content=prompt),
        ChatMessage(role="assistant", content=builder.result.text),
    ]
    turn.limit_reached = builder.result.limit_reached
    if first and job.budgets and turn.spend.cost_usd is None:
        yield progress(
            "generating",
            f"genai-prices has no price for {inputs.model.name}, so the budgets "
            "(SANDFORGE_BUDGET_*_USD) cannot count this run's cost",
            sandbox_id,
        )
    check_budgets(job.budgets, turn.spend.counted_cost)


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
    inputs: PipelineInputs, turn: TurnOutcome, files: ProjectFiles, sandbox: Sandbox | None
) -> AsyncIterator[Event]:
    """Check what a user would see, give what is wrong back to the model (bounded), then
    `complete` with the final check and what the repairs did."""
    job, settings, template = inputs.job, inputs.settings, inputs.template
    sandbox_id = sandbox.id if sandbox is not None else None
    url = inputs.preview_url if job.public else f"{inputs.preview_url}?token={job.preview_token}"
    screenshot = settings.data_dir / "screenshots" / f"{job.run_id}.png"
    repairs = Repairs()
    while True:
        if inputs.check is not None:
            yield progress("preview", "Checking the rendered page in Chromium", sandbox_id)
        findings = await find_problems(inputs.check, url, screenshot, sandbox, template)
        previous = repairs.remaining
        repairs.found(findings.problems)
        if findings.render is not None:
            yield progress("preview", _summary(findings), sandbox_id)
        stop = _why_stop(inputs, turn, repairs, previous)
        if stop is not None:
            repairs.stopped_because = stop
            break
        repairs.attempts += 1
        yield progress(
            "generating",
            f"Fixing {findings.describe()} (attempt {repairs.attempts} of "
            f"{settings.repair_attempts})",
            sandbox_id,
        )
        images = await _screenshot(screenshot) if findings.render is not None else ()
        async for event in _model_turn(
            inputs, files, sandbox, turn, repair_prompt(findings.problems), images
        ):
            yield event
    if findings.render is not None and findings.render.get("screenshot"):
        findings.render["screenshot"] = f"/api/runs/{job.run_id}/screenshot"
    message = f"Your app is live at {inputs.preview_url}"
    if repairs.remaining:
        stopped = f" ({repairs.stopped_because})" if repairs.stopped_because else ""
        message += (
            f", but automatic repair stopped{stopped} with {len(repairs.remaining)} problem(s) "
            f"left: {repairs.remaining[0]}"
        )
        yield progress("complete", message, sandbox_id)
    else:
        yield progress("complete", "Preview ready", sandbox_id)
    turn.spend.sandbox = await turn.meter.stop()
    yield CompleteEvent(
        data=CompleteData(
            success=True,
            sandboxId=sandbox_id or "",
            projectDir=sandbox.project_dir if sandbox is not None else "/",
            previewUrl=inputs.preview_url,
            accessToken=None if job.public else job.preview_token,
            tokensUsed=turn.spend.tokens_used,
            message=message,
            runId=job.run_id,
            projectId=job.project_id,
            model=inputs.model.name,
            render=findings.render,
            repairs=repairs.to_json() if repairs.seen else None,
            services=(service_previews(template, settings, job.project_id) if sandbox else None),
            limitReached=turn.limit_reached,
            **turn.spend.complete_fields(),
        )
    )


def _summary(findings: Findings) -> str:
    if not findings.problems:
        return "Rendered check: the page renders"
    first = findings.problems[0]
    if len(findings.problems) == 1:
        return f"Rendered check: {first}"
    return f"Rendered check: {len(findings.problems)} problems, first: {first}"


def _why_stop(
    inputs: PipelineInputs, turn: TurnOutcome, repairs: Repairs, previous: list[str]
) -> str | None:
    """Why the repair loop ends here, or None to try another repair."""
    if not repairs.remaining:
        return "nothing to fix"
    if inputs.model.offline:
        return "no AI model is configured"
    if repairs.attempts >= inputs.settings.repair_attempts:
        if inputs.settings.repair_attempts == 0:
            return "SANDFORGE_REPAIR_ATTEMPTS is 0"
        return f"after {repairs.attempts} attempt(s), the limit (SANDFORGE_REPAIR_ATTEMPTS)"
    if repairs.attempts and repairs.remaining == previous:
        return "the same problems came back unchanged"
    if turn.limit_reached:
        return "a run limit was reached"
    return None


async def _screenshot(path: Path) -> tuple[PromptImage, ...]:
    try:
        return (PromptImage(data=await asyncio.to_thread(path.read_bytes), media_type="image/png"),)
    except OSError:
        return ()


def _with_sandbox(event: Event, sandbox_id: str | None) -> Event:
    if sandbox_id is not None and event.type == "error":
        event.data.sandboxId = sandbox_id
    return event
