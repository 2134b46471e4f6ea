"""The embedded local sandbox: bwrap plus an in-sandbox toolbox daemon."""

from .bwrap import BwrapLauncher, Launcher
from .control import ControlServer, RemoteLauncher
from .isolation import check_isolation
from .provider import LocalSandbox, LocalSandboxProvider
from .users import host_uid

__all__ = [
    "BwrapLauncher",
    "ControlServer",
    "Launcher",
    "LocalSandbox",
    "LocalSandboxProvider",
    "RemoteLauncher",
    "check_isolation",
    "host_uid",
]
