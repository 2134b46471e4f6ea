"""App environment values, encrypted at rest (Fernet) with a key kept in the data dir.

The key file is the server's, mode 0600, beside the session key; the database holds only
ciphertext, so a copy of the database alone reveals no value.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.fernet import Fernet


def _key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
    return path.read_bytes().strip()


class AppSecrets:
    def __init__(self, key_file: Path) -> None:
        self._fernet = Fernet(_key(key_file))

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()
