"""Project types: starter files, how the dev server runs, and what the model is told."""

from __future__ import annotations

import html
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

PLACEHOLDERS = ("title", "heading", "description")


def _escape(text: str) -> str:
    """Safe in HTML text and in JSX text (where braces would start an expression)."""
    return html.escape(text).replace("{", "&#123;").replace("}", "&#125;")


@dataclass(frozen=True)
class ProjectTemplate:
    name: str
    label: str
    stack: str
    """One paragraph for the system prompt: the stack, where files live, how it is served."""
    dev_command: str
    port: int
    entry_file: str
    starter_files: tuple[str, ...]
    dependency_dir: str | None = None
    """Installed packages (node_modules): filled once on the host from `lock_files` and
    mounted read-only into local sandboxes, which need no network for them."""
    lock_files: tuple[str, ...] = ()
    install_command: str | None = None
    """Installs the dependencies inside a sandbox that has no host cache (Daytona)."""
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
    def files(self) -> Traversable:
        return resources.files(__package__).joinpath(self.name)

    def starter(self, *, title: str, heading: str, description: str) -> dict[str, str]:
        """The starter files with the placeholders filled in (escaped)."""
        values = {"title": title, "heading": heading, "description": description}
        files = {}
        for name in self.starter_files:
            text = self.files.joinpath(name).read_text(encoding="utf-8")
            for key in PLACEHOLDERS:
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
    dev_command="python3 -m http.server 3000 --bind 127.0.0.1",
    port=3000,
    entry_file="index.html",
    starter_files=("index.html", "styles.css", "app.js"),
)

REACT = ProjectTemplate(
    name="react",
    label="React + Vite + TypeScript",
    stack=(
        "A React 19 app in TypeScript, built and served by Vite 7 with hot module replacement. "
        "index.html at the project root loads src/main.tsx, which renders src/App.tsx; styles "
        "are in src/App.css. Put components in src/ (one per file, .tsx). The installed "
        "packages are react, react-dom, vite, @vitejs/plugin-react and typescript; node_modules "
        "is read-only and there is no network, so use no other packages. Do not edit "
        "package.json, package-lock.json or vite.config.ts. The Vite dev server runs on port "
        "3000 and reloads changes by itself."
    ),
    dev_command=(
        "node node_modules/vite/bin/vite.js --host 127.0.0.1 --port 3000 --strictPort "
        "--configLoader runner"
    ),
    port=3000,
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
    dependency_dir="node_modules",
    lock_files=("package.json", "package-lock.json"),
    install_command="npm ci --no-audit --no-fund",
    typecheck_command="node node_modules/typescript/bin/tsc --noEmit -p tsconfig.json --pretty false",
    build_command=(
        "node node_modules/vite/bin/vite.js build --configLoader runner --emptyOutDir "
        "--outDir .sandforge-build"
    ),
    startup_files=("package.json", "package-lock.json", "vite.config.ts"),
    reloads_itself=True,
)

TEMPLATES: dict[str, ProjectTemplate] = {t.name: t for t in (WEB_APP, REACT)}


def get_template(name: str) -> ProjectTemplate:
    return TEMPLATES[name]
