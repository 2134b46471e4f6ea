"""`sandforge doctor` against the fake model APIs and the real bwrap check."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from sandforge import doctor
from sandforge.cli import app
from sandforge.config import get_settings
from sandforge.doctor import (
    Check,
    check_model,
    check_sandbox,
    check_templates,
    check_ui,
    print_report,
    run_checks,
)
from sandforge.sandbox.local.isolation import Isolation
from tests.agent.conftest import Wire, make_settings


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_offline_is_a_warning_with_the_fix(tmp_path: Path) -> None:
    (check,) = check_model(make_settings(tmp_path))
    assert check.status == "warn" and "offline scaffolder" in check.detail
    assert check.fix is not None
    assert "ANTHROPIC_API_KEY" in check.fix and "SANDFORGE_MODEL" in check.fix


def test_a_working_endpoint(wire: Wire) -> None:
    checks = by_name(check_model(wire.settings()))
    assert checks["model"].status == "ok"
    assert checks["model key"].status == "ok" and wire.key_env in checks["model key"].detail
    endpoint = checks["model endpoint"]
    if wire.name == "anthropic":
        # Anthropic's free token counter checks the key and the model.
        assert endpoint.status == "ok" and "the key works" in endpoint.detail
        assert wire.fake.requests[-1].path == "/v1/messages/count_tokens"
    else:
        # The fake has no model list, like some OpenAI-compatible servers.
        assert endpoint.status == "warn" and "no model list" in endpoint.detail
        assert wire.fake.requests[-1].path == "/v1/models"


def test_a_wrong_key_fails_and_names_the_variable(wire: Wire) -> None:
    endpoint = by_name(check_model(wire.settings(api_key="sk-wrong")))["model endpoint"]
    assert endpoint.status == "fail" and "HTTP 401" in endpoint.detail
    assert endpoint.fix is not None and wire.key_env in endpoint.fix


def test_an_endpoint_that_does_not_answer(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    checks = by_name(
        check_model(make_settings(tmp_path, model="ollama:qwen2.5-coder", ollama_base_url=url))
    )
    endpoint = checks["model endpoint"]
    assert endpoint.status == "fail" and f"Cannot reach Ollama at {url}" in endpoint.detail
    assert endpoint.fix is not None and "OLLAMA_BASE_URL" in endpoint.fix
    assert "ollama serve" in endpoint.fix


def test_a_model_setting_that_cannot_work(tmp_path: Path) -> None:
    (check,) = check_model(make_settings(tmp_path, model="openai-chat:gpt-4.1"))
    assert check.status == "fail" and "OPENAI_API_KEY" in check.detail


def test_bwrap_usable() -> None:
    (check,) = check_sandbox(make_settings(Path("/nonexistent")))
    assert check.status == "ok" and "bubblewrap works" in check.detail
    assert "trixie image" in check.detail


def test_the_sandbox_image_not_built(tmp_path: Path) -> None:
    (check,) = check_sandbox(make_settings(tmp_path, rootfs_dir=tmp_path / "images"))
    assert check.status == "fail" and "sandbox image is not built" in check.detail
    assert check.fix is not None and "sandforge templates prepare" in check.fix


def test_bwrap_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problem = (
        "bubblewrap (bwrap) is not installed: run `apt-get install bubblewrap`, "
        "or set SANDFORGE_ALLOW_UNISOLATED=1 to run sandboxes without isolation"
    )
    monkeypatch.setattr(doctor, "check_isolation", lambda: Isolation(False, problem))
    (check,) = check_sandbox(make_settings(tmp_path))
    assert check.status == "fail" and "bubblewrap (bwrap) is not installed" in check.detail
    assert check.fix is not None and check.fix.startswith("run `apt-get install bubblewrap`")
    (check,) = check_sandbox(make_settings(tmp_path, allow_unisolated=True))
    assert check.status == "warn" and "WITHOUT isolation" in check.detail


def test_daytona_without_a_key(tmp_path: Path) -> None:
    (check,) = check_sandbox(make_settings(tmp_path, sandbox_provider="daytona"))
    assert check.status == "fail" and check.fix is not None and "DAYTONA_API_KEY" in check.fix


def test_report_and_exit_code(tmp_path: Path) -> None:
    out = io.StringIO()
    checks = run_checks(make_settings(tmp_path, model="openai-chat:gpt-4.1"))
    assert print_report(checks, Console(file=out, width=200)) == 1
    assert "FAIL model" in out.getvalue() and "problem(s) to fix" in out.getvalue()

    out = io.StringIO()
    assert print_report(run_checks(make_settings(tmp_path)), Console(file=out, width=200)) == 0
    assert "fix:" in out.getvalue() and "Ready." in out.getvalue()


def test_cli_doctor(wire: Wire, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("SANDFORGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SANDFORGE_MODEL", wire.model)
    monkeypatch.setenv(wire.key_env, "sk-wrong")
    base_url_env = "ANTHROPIC_BASE_URL" if wire.name == "anthropic" else "OPENAI_BASE_URL"
    monkeypatch.setenv(base_url_env, wire.fake.url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "200"})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    assert "HTTP 401" in result.output and wire.key_env in result.output


def test_the_web_ui_libraries_are_checked(tmp_path: Path) -> None:
    installed = check_ui(make_settings(tmp_path))
    assert [c.status for c in installed] == ["ok"]
    (missing,) = check_ui(make_settings(tmp_path).model_copy(update={"ui_vendor_dir": tmp_path}))
    assert missing.status == "fail" and missing.fix is not None
    assert "sandforge ui prepare" in missing.fix


def test_project_types_without_their_packages_are_named(tmp_path: Path) -> None:
    (installed,) = check_templates(make_settings(tmp_path))
    assert installed.status == "ok", installed.detail
    settings = make_settings(tmp_path).model_copy(update={"template_cache_dir": tmp_path})
    (missing,) = check_templates(settings)
    assert missing.status == "fail" and missing.fix is not None
    assert "sandforge templates prepare" in missing.fix
    named, ready = (
        missing.detail.split(" cannot be generated")[0],
        missing.detail.split("Ready: ")[1],
    )
    assert set(named.split(", ")) == {"react", "fastapi", "streamlit", "nextjs", "fullstack"}
    assert ready == "web-app."  # it needs no packages
    # Daytona builds its own images; without a local image, the sandbox check says so.
    assert check_templates(make_settings(tmp_path, sandbox_provider="daytona")) == []
    assert check_templates(make_settings(tmp_path, rootfs_dir=tmp_path / "images")) == []
