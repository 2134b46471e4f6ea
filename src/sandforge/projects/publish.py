"""Publishing: a project's production build, served publicly at a stable URL.

A static project type is published as its latest version's files; a type with a build
step (react: `vite build`) is built in the project's sandbox and the output is stored.
Either way the published files live in the store, so the site keeps serving when the
dev sandbox is stopped or deleted. Republishing replaces them at the same URL.
"""

from __future__ import annotations

from ..errors import Conflict, NotFound
from ..sandbox import Sandbox
from ..store.published import PublishedRecord, PublishedSites
from ..store.records import ProjectRecord
from ..templates import ProjectTemplate, get_template
from .export import export_version
from .names import slugify
from .service import Projects
from .serving import log_tail

BUILD_TIMEOUT_S = 300.0
SERVED_AS_IS = frozenset({"web-app"})
"""Static project types: their files are the site (the others either build one, or run a
server)."""


class NotPublished(NotFound):
    code = "not_published"


class PublishUnsupported(Conflict):
    code = "publish_unsupported"


class BuildFailed(Conflict):
    code = "build_failed"


class Publisher:
    def __init__(self, projects: Projects, sites: PublishedSites) -> None:
        self.projects = projects
        self.store = projects.store
        self.sites = sites

    async def publish(self, project_id: str) -> PublishedRecord:
        """Build the project's latest version for production and serve it publicly."""
        project = await self.store.get_project(project_id)
        version, files = await export_version(self.store, project_id, None)
        template = get_template(project.project_type)
        if template.build_command is not None:
            files = await self._build(project, template)
        elif template.name not in SERVED_AS_IS:
            raise PublishUnsupported(
                f"A {template.name} project runs a server of its own; publishing it needs a "
                "long-lived sandbox, which sandforge does not have yet. Export it (zip or "
                "GitHub) and deploy it where it can run."
            )
        published = await self.sites.get(project_id)
        slug = published.slug if published is not None else await self._free_slug(project)
        return await self.sites.publish(project_id, slug, version.number, files)

    async def unpublish(self, project_id: str) -> None:
        await self.store.get_project(project_id)
        if not await self.sites.unpublish(project_id):
            raise NotPublished(f"Project {project_id} is not published.")

    async def published(self, project_id: str) -> PublishedRecord | None:
        await self.store.get_project(project_id)
        return await self.sites.get(project_id)

    async def _free_slug(self, project: ProjectRecord) -> str:
        """The project's name as a host label; made unique with the id's tail if taken."""
        slug = slugify(project.name)
        if await self.sites.by_slug(slug) is None:
            return slug
        return f"{slug[:40]}-{project.id[-6:]}"

    async def _build(self, project: ProjectRecord, template: ProjectTemplate) -> dict[str, bytes]:
        if project.flow != "sandbox":
            raise PublishUnsupported(
                f"A {template.name} project needs a build, which runs in a sandbox; this "
                "project has none (it uses the persistent flow)."
            )
        assert template.build_command is not None
        # The sandbox's files must be the latest version's, so no run may change them now.
        self.projects.refuse_if_busy(project.id)
        sandbox = await self.projects.serving_sandbox(project.id)
        result = await sandbox.exec(template.build_command, timeout=BUILD_TIMEOUT_S)
        try:
            if result.exit_code != 0:
                raise BuildFailed(
                    f"The production build failed (exit code {result.exit_code}):\n"
                    f"{log_tail(result.stdout + chr(10) + result.stderr)}\nFix the error (ask "
                    "the model in a follow-up) and publish again."
                )
            return await _read_tree(sandbox, template.build_dir)
        finally:
            # The build output is not the project's source: it must not land in a version.
            await sandbox.exec(f"rm -rf -- {template.build_dir}")


async def _read_tree(sandbox: Sandbox, directory: str) -> dict[str, bytes]:
    prefix = directory.rstrip("/") + "/"
    return {
        entry.path.removeprefix(prefix): await sandbox.read_file(entry.path)
        for entry in await sandbox.list_files(directory)
        if not entry.is_dir
    }
