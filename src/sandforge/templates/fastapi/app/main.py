"""The app: pages rendered from Jinja2 templates in app/templates, files from app/static."""

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent

app = FastAPI()
app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
templates = Jinja2Templates(directory=HERE / "templates")

FEATURES = ["Jinja2 templates", "static files", "reload on save"]


@app.get("/", response_class=HTMLResponse)
async def index(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "index.html", {"features": FEATURES})


@app.get("/api/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
