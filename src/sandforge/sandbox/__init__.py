"""Sandboxes: where generated code runs. Providers plug in behind one protocol."""

from .base import (
    ExecResult,
    ExecTimeout,
    FileEntry,
    PathEscapeError,
    ProcessStatus,
    Sandbox,
    SandboxError,
    SandboxFileNotFound,
    SandboxInfo,
    SandboxNotFound,
    SandboxProvider,
    SandboxSpec,
    SandboxState,
    SandboxUnavailable,
    Upstream,
)

__all__ = [
    "ExecResult",
    "ExecTimeout",
    "FileEntry",
    "PathEscapeError",
    "ProcessStatus",
    "Sandbox",
    "SandboxError",
    "SandboxFileNotFound",
    "SandboxInfo",
    "SandboxNotFound",
    "SandboxProvider",
    "SandboxSpec",
    "SandboxState",
    "SandboxUnavailable",
    "Upstream",
]
