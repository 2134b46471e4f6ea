"""Real SDKs against the fake model APIs, real bwrap sandboxes, the real pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandforge.agent.models import resolve_model
from sandforge.config import Settings
from sandforge.events import Event
from sandforge.runs.job import RunJob
from sandforge.runs.pipeline import PipelineInputs, run_pipeline
from sandforge.runs.request import GenerationRequest
from sandforge.sandbox import Sandbox, SandboxSpec
from sandforge.sandbox.local import BwrapLauncher, LocalSandboxProvider
from tests.fakes.model_apis import FakeAnthropic, FakeModelServer, FakeOpenAI

MODEL_ENV = (
    "ANTHROPIC_BASE_URL",
    "OPENAI_BASE_URL",
    "OLLAMA_BASE_URL",
    "OLLAMA_API_KEY",
    "SANDFORGE_ANTHROPIC_API_KEY",
    "SANDFORGE_ANTHROPIC_BASE_URL",
    "SANDFORGE_OPENAI_API_KEY",
    "SANDFORGE_OPENAI_BASE_URL",
    "SANDFORGE_OLLAMA_BASE_URL",
    "SANDFORGE_OLLAMA_API_KEY",
    "SANDFORGE_ALLOWED_MODELS",
    "SANDFORGE_SANDBOX",
)

FAST_RETRIES: dict[str, Any] = {"model_retry_base_s": 0.001, "model_retry_max_s": 0.005}


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Besides the keys the root conftest scrubs: no base URLs or overrides from the host."""
    for name in MODEL_ENV:
        monkeypatch.delenv(name, raising=False)


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        dev_server_ready_timeout_s=30,
        render_check=False,
        **{**FAST_RETRIES, **values},
    )


@dataclass
class Wire:
    """One provider's wire: its fake server and settings that point sandforge at it."""

    name: str
    fake: FakeModelServer
    tmp_path: Path

    @property
    def key_env(self) -> str:
        return "ANTHROPIC_API_KEY" if self.name == "anthropic" else "OPENAI_API_KEY"

    @property
    def model(self) -> str:
        return "anthropic:claude-sonnet-4-5" if self.name == "anthropic" else "openai-chat:gpt-4.1"

    def settings(self, api_key: str | None = None, **values: Any) -> Settings:
        key = api_key or self.fake.api_key
        if self.name == "anthropic":
            wire: dict[str, Any] = {"anthropic_api_key": key, "anthropic_base_url": self.fake.url}
        else:
            wire = {"openai_api_key": key, "openai_base_url": self.fake.url}
        return make_settings(self.tmp_path, model=self.model, **wire, **values)


@pytest.fixture(params=["anthropic", "openai"])
def wire(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Wire]:
    fake_class: type[FakeModelServer] = (
        FakeAnthropic if request.param == "anthropic" else FakeOpenAI
    )
    with fake_class() as fake:
        yield Wire(request.param, fake, tmp_path)


@pytest.fixture
async def launcher() -> AsyncIterator[BwrapLauncher]:
    launcher = BwrapLauncher()
    yield launcher
    await launcher.close()


@pytest.fixture
async def sandbox(tmp_path: Path, launcher: BwrapLauncher) -> AsyncIterator[Sandbox]:
    provider = LocalSandboxProvider(tmp_path / "sandboxes", launcher)
    sandbox = await provider.create(SandboxSpec())
    try:
        yield sandbox
    finally:
        await sandbox.delete()


@dataclass
class PipelineRun:
    events: list[Event]
    sandbox: Sandbox | None

    async def read(self, path: str) -> str:
        assert self.sandbox is not None
        return (await self.sandbox.read_file(path)).decode()


RunPipeline = Callable[..., Awaitable[PipelineRun]]


@pytest.fixture
async def pipeline(launcher: BwrapLauncher) -> AsyncIterator[RunPipeline]:
    """Runs a generation through run_pipeline in-process; deletes its sandboxes afterwards."""
    providers: list[LocalSandboxProvider] = []

    async def run(
        settings: Settings,
        prompt: str = "Make a hello page",
        history: Sequence[dict[str, str]] = (),
        model: str | None = None,
        agents: Sequence[str] = ("frontend-dev",),
    ) -> PipelineRun:
        provider = LocalSandboxProvider(settings.sandboxes_dir, launcher)
        providers.append(provider)
        request = GenerationRequest.model_validate(
            {
                "messages": [*history, {"role": "user", "content": prompt}],
                "agents": list(agents),
            }
        )
        job = RunJob(
            run_id="run-agent-test",
            request=request,
            project_id="prj-agent-test",
            project_type="web-app",
            flow="sandbox",
            provider="local",
            preview_token="preview-token",
            history=request.history,
        )
        inputs = PipelineInputs(job=job, settings=settings, model=resolve_model(settings, model))
        events = [event async for event in run_pipeline(inputs, provider, None)]
        infos = await provider.list()
        sandbox = await provider.get(infos[0].id) if infos else None
        return PipelineRun(events, sandbox)

    yield run
    for provider in providers:
        for info in await provider.list():
            await (await provider.get(info.id)).delete()
