"""create_app(): the API, the pages and the preview proxy in one ASGI app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp

from ..agent.models import configured_model_name
from ..agent.prompts import PERSONAS
from ..config import Settings, get_settings
from ..sandbox import SKIPPED_DIRS
from ..templates import TEMPLATES
from .api import projects, runs, sandboxes
from .errors import install_error_handlers
from .preview import PreviewProxy
from .services import Services

WEB_DIR = Path(__file__).with_name("web")

SEED_EXAMPLES = (
    "Create a calculator with a modern design",
    "Create a todo app with dark mode",
    "Build a task management app with:\n- Add/edit/delete tasks\n- Mark tasks as complete\n"
    "- Filter by status\n- Dark mode toggle\n- LocalStorage persistence",
)


def _page_context(request: Request, flow: str) -> dict[str, Any]:
    svc: Services = request.app.state.services
    return {
        "flow": flow,
        "project_types": [(t.name, t.label) for t in TEMPLATES.values()],
        "personas": list(PERSONAS),
        "persona_descriptions": PERSONAS,
        "max_prompt_chars": svc.settings.max_prompt_chars,
        "examples": SEED_EXAMPLES,
        "model": configured_model_name(svc.settings),
        "isolated": svc.isolated,
        "skipped_dirs": json.dumps(sorted(SKIPPED_DIRS)),
    }


def create_app(settings: Settings | None = None) -> ASGIApp:
    settings = settings or get_settings()
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(title="sandforge", lifespan=lifespan)
    app.state.services = services
    install_error_handlers(app)
    app.include_router(runs.router)
    app.include_router(sandboxes.router)
    app.include_router(projects.router)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    pages = Jinja2Templates(directory=WEB_DIR / "templates")

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "isolated": services.isolated, "model": configured_model_name(settings)}

    @app.get("/", response_class=HTMLResponse)
    @app.get("/create-daytona", response_class=HTMLResponse)
    async def create_sandbox_page(request: Request) -> HTMLResponse:
        return pages.TemplateResponse(request, "create.html", _page_context(request, "sandbox"))

    @app.get("/create", response_class=HTMLResponse)
    async def create_page(request: Request) -> HTMLResponse:
        return pages.TemplateResponse(request, "create.html", _page_context(request, "persistent"))

    @app.get("/sandboxes", response_class=HTMLResponse)
    async def sandboxes_page(request: Request) -> HTMLResponse:
        return pages.TemplateResponse(request, "sandboxes.html", _page_context(request, "sandbox"))

    return PreviewProxy(app, services)
