"""The web UI's pages: /create-daytona (sandbox flow), /create (persistent flow), /sandboxes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ..agent.models import configured_model_name
from ..agent.prompts import PERSONAS
from ..sandbox import SKIPPED_DIRS, SandboxError
from ..sandbox.fleet import PROVIDER_NAMES, SandboxFleet
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
EXAMPLE_CARDS = (("calc", "Calculator"), ("todo", "Todo app"), ("tasks", "Task manager"))
PROVIDER_LABELS = {"local": "This machine (local sandbox)", "daytona": "Daytona (cloud sandbox)"}


@dataclass(frozen=True)
class Example:
    icon: str
    title: str
    summary: str
    """What the card says under its title: the prompt, or its list of requirements."""
    prompt: str


def _summary(prompt: str) -> str:
    """One line for a card: a one-line prompt as it is; else its requirements, listed."""
    first, *rest = prompt.splitlines()
    items = [line.strip().lstrip("-*").strip() for line in rest if line.strip()]
    if not items:
        return first
    return ", ".join([items[0], *(i[:1].lower() + i[1:] for i in items[1:])])


EXAMPLES = tuple(
    Example(icon, title, _summary(prompt), prompt)
    for (icon, title), prompt in zip(EXAMPLE_CARDS, SEED_EXAMPLES, strict=True)
)


def _providers(fleet: SandboxFleet) -> list[tuple[str, str, str | None]]:
    """Each sandbox provider: its name, its label, and why it cannot be used here (or None)."""
    found: list[tuple[str, str, str | None]] = []
    for name in PROVIDER_NAMES:
        try:
            fleet.check_provider(name)
            found.append((name, PROVIDER_LABELS.get(name, name), None))
        except SandboxError as exc:
            found.append((name, PROVIDER_LABELS.get(name, name), exc.message))
    return found


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
        "examples": EXAMPLES,
        "providers": _providers(svc.fleet),
        "default_provider": svc.settings.sandbox_provider,
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
