#!/usr/bin/python3
"""`pip` inside a sandbox with the package bridge: pip itself, and then `pip install <name>`
records each new name in the project's requirements file (SANDFORGE_REQUIREMENTS, by
default requirements.txt in the working dir), the way `npm install` updates package.json.

Standard library only: it runs on the sandbox's python3, not sandforge's.
"""

import os
import re
import subprocess
import sys

VALUE_OPTIONS = frozenset(
    [
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "-c",
        "--constraint",
        "--python-version",
        "--platform",
        "--implementation",
        "--abi",
        "--progress-bar",
        "--log",
        "--proxy",
        "--timeout",
        "--retries",
        "--cache-dir",
        "--src",
        "--upgrade-strategy",
        "--prefix",
        "--root",
        "-t",
        "--target",
        "--no-binary",
        "--only-binary",
        "--config-settings",
        "-C",
        "--global-option",
        "--trusted-host",
        "--cert",
        "--client-cert",
        "--exists-action",
        "--report",
    ]
)
_NAME_END = re.compile(r"[\[<>=!~; @]")


def _name(requirement: str) -> str:
    return _NAME_END.split(requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def requested(args: list[str]) -> list[str]:
    """The requirements named on an install command line; none when it reads a file."""
    names, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-r", "--requirement", "-e", "--editable"):
            return []
        elif arg in VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            names.append(arg)
    return names


def record(path: str, requirements: list[str]) -> None:
    try:
        with open(path, encoding="utf-8") as source:
            lines = source.read().splitlines()
    except FileNotFoundError:
        lines = []
    have = {_name(line) for line in lines if line.strip() and not line.startswith("#")}
    new = [r for r in requirements if _name(r) not in have]
    if new:
        with open(path, "w", encoding="utf-8") as out:
            out.write("\n".join([*lines, *new]) + "\n")


def main() -> int:
    args = sys.argv[1:]
    code = subprocess.call([sys.executable, "-m", "pip", *args])
    if code == 0 and args[:1] == ["install"]:
        record(os.environ.get("SANDFORGE_REQUIREMENTS", "requirements.txt"), requested(args[1:]))
    return code


if __name__ == "__main__":
    sys.exit(main())
