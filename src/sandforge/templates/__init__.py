"""Project types: starter files, how the dev server runs, and what the model is told."""

from __future__ import annotations

import html
import json
import posixpath
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Literal

PLACEHOLDERS = ("title", "heading", "description")
LITERAL = ":literal"
"""`{{title:literal}}` is a quoted string literal (JSON's, valid in Python, JS and TS);
`{{title}}` is text for HTML or JSX."""


def _escape(text: str) -> str:
    """Safe in HTML text and in JSX text (where braces would start an expression)."""
    return html.escape(text).replace("{", "&#123;").replace("}", "&#125;")


@dataclass(frozen=True)
class Service:
    """One long-running process of a project, served at its own preview host."""

    name: str
    command: str
    port: int
    cwd: str = "."
    """Project-relative dir the command runs in."""


@dataclass(frozen=True)
class Packages:
    """A template's installed packages: filled once on the host from `lock_files` and mounted
    at `directory` in local sandboxes (under a writable layer of their own), which then need
    no network for them."""

    manager: Literal["npm", "pip"]
    directory: str
    """Project-relative mount point (`node_modules` beside package.json, or `.packages`)."""
    lock_files: tuple[str, ...]
    """Project-relative; npm's are package.json and package-lock.json, pip's a requirements
    file with pinned versions."""
    install_command: str
    """Installs them inside a sandbox that has no host cache (Daytona), from the project dir."""


PYTHON_PACKAGES_DIR = ".packages"
PYTHON_ENV = {"PYTHONPATH": PYTHON_PACKAGES_DIR, "PYTHONDONTWRITEBYTECODE": "1"}
"""Python finds the template's packages through a path relative to the project dir, the
working dir of services and commands, so it holds for every provider's project dir."""


def npm_packages(package_dir: str = ".") -> Packages:
    lock_files = tuple(
        posixpath.join(package_dir, n) for n in ("package.json", "package-lock.json")
    )
    return Packages(
        manager="npm",
        directory=posixpath.normpath(posixpath.join(package_dir, "node_modules")),
        lock_files=tuple(posixpath.normpath(p) for p in lock_files),
        install_command=f"cd {package_dir} && npm ci --no-audit --no-fund",
    )


def pip_packages(requirements: str) -> Packages:
    return Packages(
        manager="pip",
        directory=PYTHON_PACKAGES_DIR,
        lock_files=(requirements,),
        install_command=(
            f"python3 -m pip install --quiet --target {PYTHON_PACKAGES_DIR} -r {requirements}"
        ),
    )


@dataclass(frozen=True)
class ProjectTemplate:
    name: str
    label: str
    stack: str
    """One paragraph for the system prompt: the stack, where files live, how it is served."""
    services: tuple[Service, ...]
    """The first is the main one: its preview is the project's `previewUrl`."""
    entry_file: str
    starter_files: tuple[str, ...]
    packages: tuple[Packages, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    """Variables every command and service of the project sees."""
    typecheck_command: str | None = None
    """Reports type and syntax errors without building (TypeScript's `tsc --noEmit`)."""
    build_command: str | None = None
    """Builds the production version into `build_dir`; None: the files are served as they are."""
    build_dir: str = ".sandforge-build"
    startup_files: tuple[str, ...] = ()
    """Files the dev server reads only when it starts (its packages, its config): when one
    changed, the running server is restarted before a run ends, to serve what a fresh start
    would (or fail as it would)."""
    reloads_itself: bool = False
    """The dev server updates an open page by itself when a file changes (Vite's HMR), so the
    editor's frame needs no reload helper."""

    @property
    def main(self) -> Service:
        return self.services[0]

    @property
    def port(self) -> int:
        return self.main.port

    @property
    def dev_command(self) -> str:
        return self.main.command

    @property
    def files(self) -> Traversable:
        return resources.files(__package__).joinpath(self.name)

    def starter(self, *, title: str, heading: str, description: str) -> dict[str, str]:
        """The starter files with the placeholders filled in (escaped)."""
        values = {"title": title, "heading": heading, "description": description}
        files = {}
        for name in self.starter_files:
            text = self.files.joinpath(name).read_text(encoding="utf-8")
            for key in PLACEHOLDERS:
                text = text.replace("{{" + key + LITERAL + "}}", json.dumps(values[key]))
                text = text.replace("{{" + key + "}}", _escape(values[key]))
            files[name] = text
        return files


WEB_APP = ProjectTemplate(
    name="web-app",
    label="Web app (HTML, CSS, JavaScript)",
    stack=(
        "A static web app: plain HTML, CSS and JavaScript with no build step and no npm packages. "
        "Files live at the project root; index.html is the entry page and must exist. "
        "A static file server serves the project dir on port 3000, so every change is live "
        "on reload. Link styles and scripts with relative paths (styles.css, app.js)."
    ),
    services=(Service("web", "python3 -m http.server 3000 --bind 127.0.0.1", 3000),),
    entry_file="index.html",
    starter_files=("index.html", "styles.css", "app.js"),
)

VITE_COMMAND = (
    "node node_modules/vite/bin/vite.js --host 127.0.0.1 --port 3000 --strictPort "
    "--configLoader runner"
)
TSC_COMMAND = "node node_modules/typescript/bin/tsc --noEmit -p tsconfig.json --pretty false"
UVICORN_FLAGS = "--host 127.0.0.1 --reload"

REACT = ProjectTemplate(
    name="react",
    label="React + Vite + TypeScript",
    stack=(
        "A React 19 app in TypeScript, built and served by Vite 7 with hot module replacement. "
        "index.html at the project root loads src/main.tsx, which renders src/App.tsx; styles "
        "are in src/App.css. Put components in src/ (one per file, .tsx). The installed "
        "packages are react, react-dom, vite, @vitejs/plugin-react and typescript; add another "
        "with `npm install <name>`, which records it in package.json (do not edit package.json "
        "or package-lock.json by hand). Do not edit vite.config.ts. The Vite dev server runs on port "
        "3000 and reloads changes by itself."
    ),
    services=(Service("web", VITE_COMMAND, 3000),),
    entry_file="index.html",
    starter_files=(
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
        "src/main.tsx",
        "src/App.tsx",
        "src/App.css",
    ),
    packages=(npm_packages(),),
    typecheck_command=TSC_COMMAND,
    build_command=(
        "node node_modules/vite/bin/vite.js build --configLoader runner --emptyOutDir "
        "--outDir .sandforge-build"
    ),
    startup_files=("package.json", "package-lock.json", "vite.config.ts"),
    reloads_itself=True,
)

FASTAPI = ProjectTemplate(
    name="fastapi",
    label="FastAPI + Jinja2 (Python)",
    stack=(
        "A Python 3 web app on FastAPI that serves HTML pages rendered with Jinja2. "
        "app/main.py creates `app` (routes, `Jinja2Templates` over app/templates, static files "
        "from app/static mounted at /static); pages are Jinja2 templates in app/templates and "
        "link assets with root-relative paths (/static/styles.css; not url_for, whose absolute "
        "URLs name the server's inner address); JSON endpoints go under /api. "
        "The installed packages are fastapi, uvicorn and jinja2 (listed in requirements.txt); "
        "add another with `pip install <name>`, which records it in requirements.txt. "
        "uvicorn serves `app.main:app` on port 3000 and reloads when a file under app/ "
        "changes; templates are re-read on every request."
    ),
    services=(
        Service(
            "web",
            f"python3 -m uvicorn app.main:app {UVICORN_FLAGS} --reload-dir app --port 3000",
            3000,
        ),
    ),
    entry_file="app/main.py",
    starter_files=(
        "requirements.txt",
        "app/__init__.py",
        "app/main.py",
        "app/templates/index.html",
        "app/static/styles.css",
        "app/static/app.js",
    ),
    packages=(pip_packages("requirements.txt"),),
    env=PYTHON_ENV,
    startup_files=("requirements.txt",),
)

STREAMLIT = ProjectTemplate(
    name="streamlit",
    label="Streamlit (Python)",
    stack=(
        "A Streamlit app in Python 3: app.py is the script Streamlit runs from top to "
        "bottom on every interaction (use st.session_state for state that must survive a "
        "rerun, and st.cache_data for slow work). Split helpers into modules beside it. "
        "The installed packages are streamlit and its dependencies (pandas, numpy, altair, "
        "pillow), listed in requirements.txt; add another with `pip install <name>`, which "
        "records it there. Streamlit serves app.py on port 3000 and reruns "
        "it when a file is saved."
    ),
    services=(
        Service(
            "web",
            "python3 -m streamlit run app.py --server.port 3000 --server.address 127.0.0.1 "
            "--server.headless true --server.runOnSave true --server.enableCORS false "
            "--server.enableXsrfProtection false --browser.gatherUsageStats false "
            "--global.developmentMode false",
            3000,
        ),
    ),
    entry_file="app.py",
    starter_files=("requirements.txt", "app.py"),
    packages=(pip_packages("requirements.txt"),),
    env=PYTHON_ENV,
    startup_files=("requirements.txt",),
    reloads_itself=True,
)

NEXTJS = ProjectTemplate(
    name="nextjs",
    label="Next.js (App Router, TypeScript)",
    stack=(
        "A Next.js 15 app with the App Router, in TypeScript and React 19. Routes are folders "
        "under app/: app/page.tsx is the home page, app/layout.tsx the root layout (it imports "
        "app/globals.css); components are Server Components unless the file starts with "
        '"use client" (needed for state, effects and event handlers, as in app/counter.tsx). '
        "Route handlers go in app/api/<name>/route.ts. The installed packages are next, react, "
        "react-dom and typescript; add another with `npm install <name>` (it records it in "
        "package.json). Do not edit package.json, package-lock.json or next.config.mjs by "
        "hand. `next dev` serves it on port 3000 with hot module replacement."
    ),
    services=(
        Service(
            "web",
            "node node_modules/next/dist/bin/next dev --turbopack --hostname 127.0.0.1 --port 3000",
            3000,
        ),
    ),
    entry_file="app/page.tsx",
    starter_files=(
        "package.json",
        "package-lock.json",
        "next.config.mjs",
        "tsconfig.json",
        "next-env.d.ts",
        "app/layout.tsx",
        "app/page.tsx",
        "app/counter.tsx",
        "app/globals.css",
    ),
    packages=(npm_packages(),),
    env={"NEXT_TELEMETRY_DISABLED": "1"},
    typecheck_command=TSC_COMMAND,
    startup_files=("package.json", "package-lock.json", "next.config.mjs", "tsconfig.json"),
    reloads_itself=True,
)

FULLSTACK = ProjectTemplate(
    name="fullstack",
    label="Full stack: React + Vite frontend, FastAPI + SQLite backend",
    stack=(
        "Two services. frontend/ is a React 19 app in TypeScript served by Vite 7 with hot "
        "module replacement (frontend/src/App.tsx is the main component, frontend/src/App.css "
        "its styles). backend/ is a Python 3 FastAPI app (backend/main.py creates `app`) "
        "that stores data in SQLite with the standard sqlite3 module; every backend route "
        "starts with /api. The frontend calls the backend with relative URLs such as "
        "fetch('/api/items'): Vite forwards /api to the backend. Installed packages: react, "
        "react-dom, vite and typescript in frontend/node_modules (`cd frontend && npm install "
        "<name>` adds one); fastapi and uvicorn for the backend (backend/requirements.txt; "
        "`pip install <name>` adds a Python package and records it there). Do not edit "
        "package.json, package-lock.json or vite.config.ts by hand. Vite serves the frontend on port 3000; uvicorn serves the backend on "
        "port 8000 and reloads when a file under backend/ changes."
    ),
    services=(
        Service("web", VITE_COMMAND, 3000, cwd="frontend"),
        Service(
            "api",
            f"python3 -m uvicorn backend.main:app {UVICORN_FLAGS} --reload-dir backend --port 8000",
            8000,
        ),
    ),
    entry_file="frontend/src/App.tsx",
    starter_files=(
        "frontend/index.html",
        "frontend/package.json",
        "frontend/package-lock.json",
        "frontend/vite.config.ts",
        "frontend/tsconfig.json",
        "frontend/src/main.tsx",
        "frontend/src/App.tsx",
        "frontend/src/App.css",
        "backend/requirements.txt",
        "backend/__init__.py",
        "backend/main.py",
    ),
    packages=(npm_packages("frontend"), pip_packages("backend/requirements.txt")),
    env={**PYTHON_ENV, "SANDFORGE_REQUIREMENTS": "backend/requirements.txt"},
    typecheck_command=f"cd frontend && {TSC_COMMAND}",
    startup_files=(
        "frontend/package.json",
        "frontend/package-lock.json",
        "frontend/vite.config.ts",
        "backend/requirements.txt",
    ),
    reloads_itself=True,
)

TEMPLATES: dict[str, ProjectTemplate] = {
    t.name: t for t in (WEB_APP, REACT, FASTAPI, STREAMLIT, NEXTJS, FULLSTACK)
}


def get_template(name: str) -> ProjectTemplate:
    return TEMPLATES[name]
