"""Spending budgets (SANDFORGE_BUDGET_*_USD): a run stops cleanly once its cost reaches one.

The server works out, when a run starts, what the project and the day have spent before
it; the run then checks its own cost against each budget as it goes: before it starts,
as each model response's tool calls are about to run, and between turns (repairs count).
"""

from __future__ import annotations

import time
from typing import Literal, TypeGuard

from pydantic import BaseModel

from ..config import Settings
from ..errors import SandforgeError
from ..events import ErrorEvent, Event
from ..store.usage import UsageLedger

Scope = Literal["run", "project", "day"]

_WHAT: dict[Scope, str] = {
    "run": "the run budget",
    "project": "the project budget",
    "day": "the daily budget (UTC)",
}
_SPENT: dict[Scope, str] = {
    "run": "this run has cost",
    "project": "this project's runs have cost",
    "day": "today's runs have cost",
}


class BudgetReached(SandforgeError):
    code = "budget_reached"
    http_status = 402


class Budget(BaseModel):
    scope: Scope
    limit_usd: float
    spent_before_usd: float = 0.0
    """What counts against it from before this run (the project's or the day's other runs)."""

    @property
    def setting(self) -> str:
        return f"SANDFORGE_BUDGET_{self.scope.upper()}_USD"

    def remaining(self, run_cost: float) -> float:
        return self.limit_usd - self.spent_before_usd - run_cost

    def reached(self, run_cost: float) -> BudgetReached:
        spent = self.spent_before_usd + run_cost
        after = " (it resets at midnight UTC)" if self.scope == "day" else ""
        return BudgetReached(
            f"Stopped: {_WHAT[self.scope]} of ${self.limit_usd:.2f} ({self.setting}) is "
            f"reached: {_SPENT[self.scope]} ${spent:.4f}, this run ${run_cost:.4f}. The "
            f"files written so far are kept. To go on, raise {self.setting} (or unset it) "
            f"and restart the server{after}, then send a follow-up."
        )


def remaining_usd(budgets: list[Budget], run_cost: float) -> float | None:
    """What the run may still spend before the nearest budget; None without budgets."""
    return min((b.remaining(run_cost) for b in budgets), default=None)


def check(budgets: list[Budget], run_cost: float) -> None:
    """Raise BudgetReached for the first budget the run's cost has reached."""
    for budget in budgets:
        if budget.remaining(run_cost) <= 0:
            raise budget.reached(run_cost)


def keeps_files(terminal: Event) -> TypeGuard[ErrorEvent]:
    """Whether a run ended by this event keeps its files (a budget stopped it cleanly)."""
    return isinstance(terminal, ErrorEvent) and terminal.data.code == BudgetReached.code


def day_start(at: float) -> float:
    """Midnight UTC before `at`: where the daily budget starts counting."""
    return at - at % 86400


async def budgets_for(settings: Settings, ledger: UsageLedger, project_id: str) -> list[Budget]:
    """The budgets a run of this project starts under, with what was spent before it."""
    budgets = []
    if settings.budget_run_usd is not None:
        budgets.append(Budget(scope="run", limit_usd=settings.budget_run_usd))
    if settings.budget_project_usd is not None:
        spent = (await ledger.totals(project_id=project_id)).cost_usd
        budgets.append(
            Budget(scope="project", limit_usd=settings.budget_project_usd, spent_before_usd=spent)
        )
    if settings.budget_day_usd is not None:
        spent = (await ledger.totals(since=day_start(time.time()))).cost_usd
        budgets.append(
            Budget(scope="day", limit_usd=settings.budget_day_usd, spent_before_usd=spent)
        )
    return budgets
