"""The backend: a JSON API under /api over an SQLite database.

The database lives in HOME, not in the project: it is data, not code, so it is not part of
the project's versions.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from fastapi import FastAPI
from pydantic import BaseModel

DATABASE = Path.home() / "app.db"
SEED = ["Read the code in backend/main.py", "Edit frontend/src/App.tsx", "Ship it"]


@contextmanager
def connect() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(DATABASE)
    connection.row_factory = sqlite3.Row
    try:
        with connection:
            yield connection
    finally:
        connection.close()


@asynccontextmanager
async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
    with connect() as db:
        db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, title TEXT NOT NULL)")
        if db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0:
            db.executemany("INSERT INTO items (title) VALUES (?)", [(t,) for t in SEED])
    yield


app = FastAPI(lifespan=lifespan)


class NewItem(BaseModel):
    title: str


class Item(NewItem):
    id: int


@app.get("/")
def index() -> dict[str, object]:
    """What the backend's own preview shows: the API's routes."""
    return {"service": "api", "routes": sorted({r.path for r in app.routes} - {"/"})}


@app.get("/api/items")
def list_items() -> list[Item]:
    with connect() as db:
        rows = db.execute("SELECT id, title FROM items ORDER BY id").fetchall()
    return [Item(id=row["id"], title=row["title"]) for row in rows]


@app.post("/api/items", status_code=201)
def add_item(item: NewItem) -> Item:
    with connect() as db:
        cursor = db.execute("INSERT INTO items (title) VALUES (?)", (item.title,))
    return Item(id=cursor.lastrowid or 0, title=item.title)
