"""The embedded local sandbox: bwrap plus an in-sandbox toolbox daemon."""

from .bwrap import BwrapLauncher, Launcher
from .control import ControlServer, RemoteLauncher
from .isolation import check_isolation, host_uid
from .provider import LocalSandbox, LocalSandboxProvider

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
