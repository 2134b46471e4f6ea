"""What a handler may ask for (FastAPI dependencies): the server's parts, never the whole."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from ..config import Settings
from ..projects.service import Projects
from ..runs.replica import Replica
from ..runs.supervisor import Supervisor
from ..sandbox.fleet import SandboxFleet
from ..store.repo import Store
from .services import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def _settings(request: Request) -> Settings:
    return services(request).settings


def _store(request: Request) -> Store:
    return services(request).store


def _projects(request: Request) -> Projects:
    return services(request).projects


def _supervisor(request: Request) -> Supervisor:
    return services(request).supervisor


def _fleet(request: Request) -> SandboxFleet:
    return services(request).fleet


def _replica(request: Request) -> Replica | None:
    return services(request).replica


def _stopping(request: Request) -> asyncio.Event:
    return services(request).stopping


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[Store, Depends(_store)]
ProjectsDep = Annotated[Projects, Depends(_projects)]
SupervisorDep = Annotated[Supervisor, Depends(_supervisor)]
FleetDep = Annotated[SandboxFleet, Depends(_fleet)]
ReplicaDep = Annotated[Replica | None, Depends(_replica)]
"""This process as one of several replicas; None when it runs alone (no Redis)."""
StoppingDep = Annotated[asyncio.Event, Depends(_stopping)]
"""Set once the server begins to shut down: streams end, new runs are refused."""
