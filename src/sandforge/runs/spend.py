"""What a run has used so far, over all its model turns (repairs included) and its sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..agent.builder import TurnResult
from ..events import CompleteEvent, ErrorEvent, Event
from ..sandbox.metering import SandboxUsage
from ..store.usage import RunUsageRecord


@dataclass
class RunSpend:
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0
    cost_usd: float | None = 0.0
    """None once any turn had no known price."""
    sandbox: SandboxUsage | None = None

    @property
    def tokens_used(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def counted_cost(self) -> float:
        """The cost budgets count: unpriced turns count as nothing (they cannot be priced)."""
        return self.cost_usd or 0.0

    def add(self, turn: TurnResult) -> None:
        self.input_tokens += turn.input_tokens
        self.output_tokens += turn.output_tokens
        self.cache_read_tokens += turn.cache_read_tokens
        self.cache_write_tokens += turn.cache_write_tokens
        self.requests += turn.requests
        if self.cost_usd is not None:
            self.cost_usd = None if turn.cost_usd is None else self.cost_usd + turn.cost_usd

    def complete_fields(self) -> dict[str, Any]:
        """The `complete` event's usage fields (and an `error` event's `usage`)."""
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "cacheReadTokens": self.cache_read_tokens,
            "cacheWriteTokens": self.cache_write_tokens,
            "modelRequests": self.requests,
            "costUsd": round(self.cost_usd, 8) if self.cost_usd is not None else None,
            "sandboxUsage": self.sandbox.to_json() if self.sandbox is not None else None,
        }

    def error_usage(self) -> dict[str, Any] | None:
        """An `error` event's `usage`: None when the run used nothing."""
        if not self.requests and self.sandbox is None:
            return None
        fields = {k: v for k, v in self.complete_fields().items() if v is not None}
        return {"tokensUsed": self.tokens_used, "model": self.model, **fields}


def usage_record(run_id: str, project_id: str, terminal: Event) -> RunUsageRecord | None:
    """The ledger's entry for a run that ended with `terminal`; None if it used nothing."""
    if isinstance(terminal, CompleteEvent):
        data = terminal.data
        usage: dict[str, Any] = {
            "model": data.model,
            "inputTokens": data.inputTokens,
            "outputTokens": data.outputTokens,
            "cacheReadTokens": data.cacheReadTokens,
            "cacheWriteTokens": data.cacheWriteTokens,
            "modelRequests": data.modelRequests,
            "costUsd": data.costUsd,
            "sandboxUsage": data.sandboxUsage,
        }
    elif isinstance(terminal, ErrorEvent) and terminal.data.usage:
        usage = terminal.data.usage
    else:
        return None
    sandbox = usage.get("sandboxUsage") or {}
    return RunUsageRecord(
        run_id=run_id,
        project_id=project_id,
        model=usage.get("model"),
        input_tokens=usage.get("inputTokens") or 0,
        output_tokens=usage.get("outputTokens") or 0,
        cache_read_tokens=usage.get("cacheReadTokens") or 0,
        cache_write_tokens=usage.get("cacheWriteTokens") or 0,
        requests=usage.get("modelRequests") or 0,
        cost_usd=usage.get("costUsd"),
        sandbox_wall_s=sandbox.get("wallSeconds", 0.0),
        sandbox_cpu_s=sandbox.get("cpuSeconds", 0.0),
        sandbox_memory_gb_s=sandbox.get("memoryGbSeconds", 0.0),
    )
