"""create_app(): the API, the pages and the preview proxy in one ASGI app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from ..config import Settings, get_settings
from . import pages
from .api import (
    auth,
    images,
    lifecycle,
    models,
    projects,
    replicas,
    runs,
    sandboxes,
    shipping,
    system,
    timeline,
    usage,
)
from .errors import install_error_handlers
from .openapi import install_openapi
from .preview import PreviewProxy
from .security import Guard, Sessions, check_bind
from .services import Services
from .vendor import VendorFiles


class SandforgeApp:
    """The ASGI app a server runs, with the parts it holds for its lifetime."""

    def __init__(self, services: Services, asgi: PreviewProxy) -> None:
        self.services = services
        self.settings = services.settings
        self._asgi = asgi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)

    def begin_shutdown(self) -> None:
        self.services.begin_shutdown()


def create_app(settings: Settings | None = None) -> SandforgeApp:
    settings = settings or get_settings()
    services = Services(settings)
    check_bind(settings)
    app = FastAPI(title="sandforge")
    guard = Guard(app, settings, sessions=None)
    proxy = PreviewProxy(guard, settings.preview_domain)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.admin_password is not None:
            guard.sessions = await asyncio.to_thread(Sessions.load, settings)
        app.state.sessions = guard.sessions
        await services.start()
        proxy.attach(services.projects, services.fleet, services.stopping)
        try:
            yield
        finally:
            await proxy.aclose()
            await services.close()

    app.router.lifespan_context = lifespan
    app.state.services = services
    install_error_handlers(app)
    install_openapi(app)
    for module in (
        runs,
        images,
        projects,
        timeline,
        sandboxes,
        replicas,
        system,
        models,
        auth,
        shipping,
        usage,
        lifecycle,
    ):
        app.include_router(module.router)
    app.include_router(pages.router)
    # Before /static, which would otherwise answer for these paths.
    app.mount(
        "/static/vendor",
        VendorFiles(directory=settings.ui_vendor, check_dir=False),
        name="vendor",
    )
    app.mount("/static", StaticFiles(directory=pages.WEB_DIR / "static"), name="static")
    return SandforgeApp(services, proxy)
