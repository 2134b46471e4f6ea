"""What a model turn cost in USD, from genai-prices' maintained table (never one of ours).

Each response is priced on its own, with its own model, provider and date, as the table's
tiers apply per request. A response the table has no price for (a local model, a scripted
one) makes the turn's cost unknown, which is not the same as free.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from pydantic_ai.messages import ModelMessage, ModelResponse


def response_cost(response: ModelResponse) -> Decimal | None:
    """The response's price, or None when the table does not know the model."""
    if not response.model_name:
        return None
    try:
        return response.cost().total_price
    except (LookupError, ValueError):
        return None


def turn_cost(messages: Sequence[ModelMessage]) -> Decimal | None:
    """The price of the responses this turn's runs produced (those with a run id); None if
    any of them has no price."""
    total = Decimal(0)
    for message in messages:
        if isinstance(message, ModelResponse) and message.run_id is not None:
            cost = response_cost(message)
            if cost is None:
                return None
            total += cost
    return total
