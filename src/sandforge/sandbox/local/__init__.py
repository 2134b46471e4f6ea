"""The embedded local sandbox: bwrap plus an in-sandbox toolbox daemon."""

from .launcher import BwrapLauncher, ControlServer, Launcher, RemoteLauncher, check_isolation
from .provider import LocalSandbox, LocalSandboxProvider

__all__ = [
    "BwrapLauncher",
    "ControlServer",
    "Launcher",
    "LocalSandbox",
    "LocalSandboxProvider",
    "RemoteLauncher",
    "check_isolation",
]
