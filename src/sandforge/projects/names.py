"""A project's name as a slug: a DNS label and a file name in one."""

from __future__ import annotations

import re
import unicodedata

MAX_SLUG_CHARS = 40


def slugify(name: str, fallback: str = "app") -> str:
    """`My Todo App!` → `my-todo-app`: lowercase ASCII letters, digits and single hyphens,
    never starting or ending with one, so it is a valid host label."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:MAX_SLUG_CHARS].strip("-") or fallback
