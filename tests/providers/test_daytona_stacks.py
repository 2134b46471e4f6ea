"""Daytona sandboxes of a project type start from its declarative image, packages inside."""

from __future__ import annotations

import base64
import re
from typing import Any

from sandforge.projects.serving import project_spec
from sandforge.sandbox import SandboxSpec
from sandforge.sandbox.daytona import DaytonaProvider
from sandforge.templates import FULLSTACK, REACT, WEB_APP
from tests.fakes.daytona_api import FakeDaytona
from tests.providers.conftest import PROJECT_DIR, daytona_options

SPEC = SandboxSpec(labels={"sandforge": "1", "test": "stacks"})


def dockerfile(fake: FakeDaytona, sandbox_id: str) -> str | None:
    build: dict[str, Any] | None = fake.sandboxes[sandbox_id].create_request.get("buildInfo")
    return None if build is None else str(build["dockerfileContent"])


def written_files(text: str) -> dict[str, bytes]:
    """The files a Dockerfile's RUN lines write (base64, since there is no build context)."""
    found = re.findall(r"echo (\S+) \| base64 -d > (\S+)", text)
    return {path: base64.b64decode(data) for data, path in found}


async def test_a_project_types_sandbox_is_built_from_its_image_once_described(
    fake_daytona: FakeDaytona, daytona_provider: DaytonaProvider, settings: Any
) -> None:
    spec = project_spec(FULLSTACK, settings, "pj0000000000aa")
    first = await daytona_provider.create(spec)
    second = await daytona_provider.create(spec)
    try:
        text = dockerfile(fake_daytona, first.id)
        # The same Debian suite and packages as a local sandbox's image.
        system = settings.system_image
        assert text is not None and text.startswith(f"FROM debian:{system.suite}-slim")
        assert f"--no-install-recommends {' '.join(system.packages)} &&" in text
        assert "nodejs" in system.packages and "python3-pip" in system.packages
        # The packages are installed while the image builds, into the project dir, from the
        # template's own lock files: a sandbox finds them there and installs nothing.
        files = written_files(text)
        for packages in FULLSTACK.packages:
            for name in packages.lock_files:
                assert files[f"{PROJECT_DIR}/{name}"] == FULLSTACK.files.joinpath(name).read_bytes()
            assert f"cd {PROJECT_DIR} && {packages.install_command}" in text
        # The same description every time: Daytona reuses the image it built.
        assert dockerfile(fake_daytona, second.id) == text
    finally:
        await first.delete()
        await second.delete()


async def test_a_type_without_packages_or_a_chosen_snapshot_uses_no_built_image(
    fake_daytona: FakeDaytona, daytona_provider: DaytonaProvider
) -> None:
    plain = await daytona_provider.create(SandboxSpec(stack=WEB_APP.name))
    configured = DaytonaProvider(daytona_options(fake_daytona, snapshot="team/stack:1"))
    chosen = await configured.create(SandboxSpec(stack=REACT.name))
    try:
        assert dockerfile(fake_daytona, plain.id) is None
        assert dockerfile(fake_daytona, chosen.id) is None
        assert fake_daytona.sandboxes[chosen.id].snapshot == "team/stack:1"
    finally:
        await plain.delete()
        await chosen.delete()
        await configured.aclose()
