"""The web UI's pages: /create-daytona (sandbox flow), /create (persistent flow), /sandboxes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ..agent.models import configured_model_name
from ..agent.prompts import PERSONAS
from ..sandbox import SKIPPED_DIRS
from ..templates import TEMPLATES
from . import vendor
from .deps import services

WEB_DIR = Path(__file__).with_name("web")
SEED_EXAMPLES = (
    "Create a calculator with a modern design",
    "Create a todo app with dark mode",
    "Build a task management app with:\n- Add/edit/delete tasks\n- Mark tasks as complete\n"
    "- Filter by status\n- Dark mode toggle\n- LocalStorage persistence",
)

router = APIRouter(include_in_schema=False)
pages = Jinja2Templates(directory=WEB_DIR / "templates")


async def _ui_missing(root: Path) -> str | None:
    """What to do when the UI's libraries are not installed (the page says so), else None."""
    if await asyncio.to_thread(vendor.ready, root):
        return None
    return vendor.missing_message(root)


async def _context(request: Request, flow: str) -> dict[str, Any]:
    svc = services(request)
    return {
        "flow": flow,
        "project_types": [(t.name, t.label) for t in TEMPLATES.values()],
        "personas": list(PERSONAS),
        "persona_descriptions": PERSONAS,
        "max_prompt_chars": svc.settings.max_prompt_chars,
        "examples": SEED_EXAMPLES,
        "model": configured_model_name(svc.settings),
        "isolated": svc.fleet.isolated,
        "skipped_dirs": json.dumps(sorted(SKIPPED_DIRS)),
        "ui_missing": await _ui_missing(svc.settings.ui_vendor),
    }


@router.get("/", response_class=HTMLResponse)
@router.get("/create-daytona", response_class=HTMLResponse)
async def create_sandbox_page(request: Request) -> HTMLResponse:
    return pages.TemplateResponse(request, "create.html", await _context(request, "sandbox"))


@router.get("/create", response_class=HTMLResponse)
async def create_page(request: Request) -> HTMLResponse:
    return pages.TemplateResponse(request, "create.html", await _context(request, "persistent"))


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/create-daytona") -> HTMLResponse:
    return pages.TemplateResponse(
        request, "login.html", {**(await _context(request, "")), "next": next}
    )


@router.get("/sandboxes", response_class=HTMLResponse)
async def sandboxes_page(request: Request) -> HTMLResponse:
    return pages.TemplateResponse(request, "sandboxes.html", await _context(request, "sandbox"))
