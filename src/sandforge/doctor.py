"""`sandforge doctor`: is the configured model usable, and can sandboxes run here?

Each check says what it found and, when something is missing, the exact fix.
The model check asks the endpoint something free: Anthropic's token counter, or an
OpenAI-compatible server's model list.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import anthropic
import httpx
import openai
from pydantic import SecretStr
from rich.console import Console

from .agent.errors import provider_message
from .agent.models import (
    NO_KEY_NEEDED,
    OFFLINE,
    ModelConfigError,
    ProviderInfo,
    build_model,
    configured_model_name,
)
from .config import Settings
from .sandbox.local import check_isolation
from .sandbox.providers import check_provider

PROBE_TIMEOUT_S = 10.0
Status = Literal["ok", "warn", "fail"]

NO_MODEL_FIX = (
    "Set ANTHROPIC_API_KEY=sk-ant-... to build with Claude, or choose a model with "
    "SANDFORGE_MODEL, e.g. SANDFORGE_MODEL=openai-chat:gpt-4.1 with OPENAI_API_KEY, or "
    "SANDFORGE_MODEL=ollama:qwen2.5-coder (see docs/models.md)."
)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


def _secret(value: SecretStr | None) -> str | None:
    if isinstance(value, SecretStr) and value.get_secret_value():
        return value.get_secret_value()
    return None


def _key(settings: Settings, info: ProviderInfo) -> str | None:
    return _secret(
        {
            "anthropic": settings.anthropic_api_key,
            "openai": settings.openai_api_key,
            "openai-compatible": settings.openai_api_key,
            "ollama": settings.ollama_api_key,
        }.get(info.kind)
    )


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _body_message(exc: anthropic.APIStatusError | openai.APIStatusError) -> str:
    return provider_message(exc.body) or exc.message


def _status_check(info: ProviderInfo, status: int, message: str, key_env: str | None) -> Check:
    who = _capital(info.label)
    if status in (401, 403):
        return Check(
            "model endpoint",
            "fail",
            f"{who} rejected the API key (HTTP {status}: {message}).",
            f"Set a valid key in {key_env} and restart sandforge." if key_env else None,
        )
    if status == 404:
        fix = f"Set SANDFORGE_MODEL to a model {info.label} serves."
        if info.kind == "ollama":
            fix = f"Run `ollama pull {info.model_name}` on the Ollama host."
        return Check(
            "model endpoint",
            "fail",
            f"{who} does not know the model {info.model_name!r} (HTTP {status}: {message}).",
            fix,
        )
    return Check(
        "model endpoint",
        "warn" if status == 429 or status >= 500 else "fail",
        f"{who} answered HTTP {status}: {message}.",
        "Try again in a minute." if status == 429 or status >= 500 else None,
    )


def _unreachable(info: ProviderInfo, exc: Exception) -> Check:
    if info.kind == "ollama":
        fix = (
            f"Start Ollama (`ollama serve`) or set OLLAMA_BASE_URL to where it runs "
            f"(now {info.base_url})."
        )
    elif info.base_url:
        fix = f"Start the server, or set {info.base_url_env} to its URL (now {info.base_url})."
    else:
        fix = "Check this machine's network connection and proxy settings."
    return Check(
        "model endpoint", "fail", f"Cannot reach {info.label}: {str(exc).rstrip('.')}.", fix
    )


def probe_anthropic(settings: Settings, info: ProviderInfo) -> Check:
    client = anthropic.Anthropic(
        api_key=_key(settings, info) or NO_KEY_NEEDED,
        base_url=info.base_url,
        max_retries=0,
        timeout=PROBE_TIMEOUT_S,
    )
    try:
        counted = client.messages.count_tokens(
            model=info.model_name, messages=[{"role": "user", "content": "ping"}]
        )
    except anthropic.NotFoundError as exc:
        message = _body_message(exc)
        if "model" not in message.lower():  # a gateway without the token counter
            return Check(
                "model endpoint",
                "warn",
                f"{_capital(info.label)} answered, but has no token counter (HTTP 404 on "
                f"/v1/messages/count_tokens), so {info.model_name} could not be checked.",
            )
        return _status_check(info, exc.status_code, message, info.key_env)
    except anthropic.APIStatusError as exc:
        return _status_check(info, exc.status_code, _body_message(exc), info.key_env)
    except anthropic.APIConnectionError as exc:
        return _unreachable(info, exc)
    finally:
        client.close()
    return Check(
        "model endpoint",
        "ok",
        f"{_capital(info.label)} answered: the key works and "
        f"{info.model_name} is served ({counted.input_tokens} tokens counted).",
    )


def probe_openai(settings: Settings, info: ProviderInfo) -> Check:
    client = openai.OpenAI(
        api_key=_key(settings, info) or NO_KEY_NEEDED,
        base_url=info.base_url,
        max_retries=0,
        timeout=PROBE_TIMEOUT_S,
    )
    who = _capital(info.label)
    try:
        ids = [model.id for model in client.models.list()]
    except openai.NotFoundError:
        return Check(
            "model endpoint",
            "warn",
            f"{who} answered, but has no model list (HTTP 404 on /models), so "
            f"{info.model_name} could not be checked.",
        )
    except openai.APIStatusError as exc:
        return _status_check(info, exc.status_code, _body_message(exc), info.key_env)
    except openai.APIConnectionError as exc:
        return _unreachable(info, exc)
    finally:
        client.close()
    if info.model_name in ids or f"{info.model_name}:latest" in ids:
        return Check("model endpoint", "ok", f"{who} answered and serves {info.model_name}.")
    listed = ", ".join(ids[:8]) + (" ..." if len(ids) > 8 else "") if ids else "none"
    if info.kind == "ollama":
        return Check(
            "model endpoint",
            "fail",
            f"{who} answered, but {info.model_name} is not pulled (it has: {listed}).",
            f"Run `ollama pull {info.model_name}` on the Ollama host.",
        )
    return Check(
        "model endpoint",
        "warn",
        f"{who} answered, but does not list {info.model_name} (it lists: {listed}).",
        "Check SANDFORGE_MODEL against the server's model names.",
    )


PROBES: dict[str, Callable[[Settings, ProviderInfo], Check]] = {
    "anthropic": probe_anthropic,
    "openai": probe_openai,
    "openai-compatible": probe_openai,
    "ollama": probe_openai,
}


def check_model(settings: Settings) -> list[Check]:
    name = configured_model_name(settings)
    if name == OFFLINE:
        return [
            Check(
                "model",
                "warn",
                "No model is configured: runs use the offline scaffolder, which writes a starter "
                "app and says so.",
                NO_MODEL_FIX,
            )
        ]
    try:
        _, info = build_model(settings, name)
    except ModelConfigError as exc:
        return [Check("model", "fail", str(exc))]
    checks = [Check("model", "ok", f"{name} via {info.label}.")]
    if info.key_env is not None:
        if info.key_set:
            checks.append(Check("model key", "ok", f"{info.key_env} is set."))
        elif info.kind in ("anthropic", "openai"):
            checks.append(
                Check("model key", "fail", f"{info.key_env} is not set.", f"Set {info.key_env}.")
            )
        else:
            checks.append(
                Check(
                    "model key",
                    "ok",
                    f"No key set ({info.key_env}); {info.label} may not need one.",
                )
            )
    probe = PROBES.get(info.kind)
    if probe is None:
        checks.append(
            Check("model endpoint", "warn", f"Not checked: doctor cannot probe {info.kind} models.")
        )
    else:
        checks.append(probe(settings, info))
    return checks


def check_sandbox(settings: Settings) -> list[Check]:
    if settings.sandbox_provider == "daytona":
        return _check_daytona(settings)
    isolation = check_isolation()
    rootfs = settings.rootfs
    if not rootfs.ready:
        return [
            Check(
                "sandbox",
                "fail",
                f"the sandbox image is not built (in {rootfs.directory}).",
                "Run `sandforge templates prepare` (scripts/bootstrap does).",
            )
        ]
    if isolation.available:
        return [
            Check(
                "sandbox",
                "ok",
                f"local sandboxes: bubblewrap works, so they are isolated; they run on the "
                f"{rootfs.spec.suite} image in {rootfs.directory}.",
            )
        ]
    if settings.allow_unisolated:
        return [
            Check(
                "sandbox",
                "warn",
                "local sandboxes run WITHOUT isolation (SANDFORGE_ALLOW_UNISOLATED=1): "
                f"{isolation.problem}.",
                "Make bubblewrap usable, then unset SANDFORGE_ALLOW_UNISOLATED.",
            )
        ]
    problem, _, fix = isolation.problem.rpartition(": ")
    return [Check("sandbox", "fail", f"local sandboxes cannot start: {problem}.", fix or None)]


def _check_daytona(settings: Settings) -> list[Check]:
    from .sandbox import SandboxUnavailable

    try:
        check_provider("daytona", settings)
    except SandboxUnavailable as exc:
        return [
            Check("sandbox", "fail", "Daytona sandboxes: DAYTONA_API_KEY is not set.", str(exc))
        ]
    try:
        response = httpx.get(settings.daytona_api_url, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return [
            Check(
                "sandbox",
                "fail",
                f"Daytona sandboxes: cannot reach {settings.daytona_api_url}: {exc}.",
                "Check DAYTONA_API_URL and this machine's network connection.",
            )
        ]
    return [
        Check(
            "sandbox",
            "ok",
            f"Daytona sandboxes: DAYTONA_API_KEY is set and {settings.daytona_api_url} answers "
            f"(HTTP {response.status_code}).",
        )
    ]


def check_templates(settings: Settings) -> list[Check]:
    """Each project type's packages are installed for the current sandbox image: a type
    without them cannot be generated (503 `template_cache`)."""
    if settings.sandbox_provider == "daytona" or not settings.rootfs.ready:
        return []  # Daytona builds its own images; a missing image is the sandbox check's
    from .templates import TEMPLATES
    from .templates.cache import TemplateCacheError, package_mounts

    root, missing = settings.template_cache, []
    for template in TEMPLATES.values():
        try:
            package_mounts(root, template, settings.rootfs.key)
        except TemplateCacheError:
            missing.append(template.name)
    if not missing:
        return [Check("project types", "ok", f"every type's packages are installed in {root}.")]
    ready = [name for name in TEMPLATES if name not in missing]
    return [
        Check(
            "project types",
            "fail",
            f"{', '.join(missing)} cannot be generated: their packages are not installed in "
            f"{root}, or were installed for another sandbox image. Ready: {', '.join(ready)}.",
            "Run `sandforge templates prepare` (scripts/bootstrap does).",
        )
    ]


def check_data_dir(settings: Settings) -> list[Check]:
    """The data dir (or, before the first run, the dir it will be created in) is writable."""
    target = settings.data_dir
    while not target.exists() and target.parent != target:
        target = target.parent
    try:
        with tempfile.NamedTemporaryFile(dir=target):
            pass
    except OSError as exc:
        return [
            Check(
                "data dir",
                "fail",
                f"{settings.data_dir} cannot be written ({target}: {exc.strerror or exc}).",
                "Set SANDFORGE_DATA_DIR to a writable directory.",
            )
        ]
    created = "" if target == settings.data_dir else " (it is created on first use)"
    return [Check("data dir", "ok", f"{settings.data_dir} is writable{created}.")]


def check_ui(settings: Settings) -> list[Check]:
    """The web UI's libraries (CodeMirror, marked, DOMPurify) are installed for this version."""
    from .server import vendor

    root = settings.ui_vendor
    if vendor.ready(root):
        return [Check("web UI", "ok", f"its libraries are installed in {root}.")]
    return [
        Check(
            "web UI",
            "fail",
            f"its libraries are not installed in {root} (or are for another version).",
            "Run `sandforge ui prepare` (scripts/bootstrap does).",
        )
    ]


def run_checks(settings: Settings) -> list[Check]:
    return [
        *check_model(settings),
        *check_sandbox(settings),
        *check_templates(settings),
        *check_data_dir(settings),
        *check_ui(settings),
    ]


MARKS = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def print_report(checks: list[Check], console: Console) -> int:
    """Print the checks; 1 if any failed (warnings do not fail)."""
    for check in checks:
        console.print(f"{MARKS[check.status]} {check.name}: ", end="", highlight=False)
        console.print(check.detail, markup=False, highlight=False, soft_wrap=True)
        if check.fix:
            console.print("     fix: ", end="", style="bold", highlight=False)
            console.print(check.fix, markup=False, highlight=False, soft_wrap=True)
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        console.print(f"\n[red]{len(failed)} problem(s) to fix.[/]")
        return 1
    console.print("\n[green]Ready.[/]")
    return 0
