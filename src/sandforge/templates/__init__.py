"""Project types: starter files, how the dev server runs, and what the model is told."""

from __future__ import annotations

import html
from dataclasses import dataclass
from importlib import resources

PLACEHOLDERS = ("title", "heading", "description")


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

    def starter(self, *, title: str, heading: str, description: str) -> dict[str, str]:
        """The starter files with the placeholders filled in (HTML-escaped)."""
        values = {"title": title, "heading": heading, "description": description}
        root = resources.files(__package__).joinpath(self.name)
        files = {}
        for name in self.starter_files:
            text = root.joinpath(name).read_text(encoding="utf-8")
            for key in PLACEHOLDERS:
                text = text.replace("{{" + key + "}}", html.escape(values[key]))
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

TEMPLATES: dict[str, ProjectTemplate] = {t.name: t for t in (WEB_APP,)}


def get_template(name: str) -> ProjectTemplate:
    return TEMPLATES[name]
