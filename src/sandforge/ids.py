"""Ids of sandforge's own things, minted in one place; their prefix says what they name.

`pj…` a project, `sb…` a local sandbox, `run…` a run, `sh…` a share link. Remote
providers name their own sandboxes (a Daytona sandbox id is a UUID), so an id without
one of our prefixes is a foreign sandbox's. The API returns `kind` beside ids, so
clients never parse them.
"""

from __future__ import annotations

import re
import secrets
from typing import Literal

Kind = Literal["project", "sandbox", "run", "share"]

PREFIXES: dict[Kind, str] = {"project": "pj", "sandbox": "sb", "run": "run", "share": "sh"}
_RANDOM_BYTES: dict[Kind, int] = {"project": 6, "sandbox": 6, "run": 8, "share": 6}
_SHAPE = {
    kind: re.compile(rf"^{prefix}[0-9a-f]{{{_RANDOM_BYTES[kind] * 2}}}$")
    for kind, prefix in PREFIXES.items()
}


def new_id(kind: Kind) -> str:
    return PREFIXES[kind] + secrets.token_hex(_RANDOM_BYTES[kind])


def kind_of(value: str) -> Kind | None:
    """What one of our ids names; None for anything else (a remote provider's sandbox id)."""
    for kind, shape in _SHAPE.items():
        if shape.match(value):
            return kind
    return None


def is_id(value: str, kind: Kind) -> bool:
    return _SHAPE[kind].match(value) is not None


def random_part(value: str) -> int:
    """The random part of one of our ids as a number (local sandboxes derive their uid from it)."""
    kind = kind_of(value)
    if kind is None:
        raise ValueError(f"{value!r} is not a sandforge id")
    return int(value[len(PREFIXES[kind]) :], 16)
