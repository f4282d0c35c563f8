"""Published OpenAI prices, so a run's ``Usage.cost`` is filled in without configuration.

Prices change: the table is a snapshot taken on :data:`PRICES_AS_OF` from
https://openai.com/api/pricing (standard tier, US dollars per million tokens). Pass
``price=Price(...)`` to ``OpenAIModel`` or ``OpenAIEmbedder`` to override it, for example for a
negotiated rate, the batch tier, or a model missing here; a model with no price costs 0.
"""

from __future__ import annotations

import re

from warlock_ai.core.agents.messages import Price

PRICES_AS_OF = "2025-06-01"

PRICES: dict[str, Price] = {
    "gpt-4o": Price(input=2.50, output=10.00, cached_input=1.25),
    # The first gpt-4o snapshot kept its launch price; exact names win over the family.
    "gpt-4o-2024-05-13": Price(input=5.00, output=15.00),
    "gpt-4o-mini": Price(input=0.15, output=0.60, cached_input=0.075),
    "gpt-4.1": Price(input=2.00, output=8.00, cached_input=0.50),
    "gpt-4.1-mini": Price(input=0.40, output=1.60, cached_input=0.10),
    "gpt-4.1-nano": Price(input=0.10, output=0.40, cached_input=0.025),
    "text-embedding-3-small": Price(input=0.02, output=0.0),
    "text-embedding-3-large": Price(input=0.13, output=0.0),
    "text-embedding-ada-002": Price(input=0.10, output=0.0),
}

# "gpt-4o-mini-2024-07-18" and "gpt-4-0613" are dated snapshots of "gpt-4o-mini" and "gpt-4".
_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


def price_for(model_name: str) -> Price | None:
    """The price of ``model_name`` or of the family a dated snapshot belongs to, else None.

    Only exact names and date suffixes match: "gpt-4o-audio-preview" is not priced as
    "gpt-4o", because a wrong price is worse than none.
    """
    name = model_name.strip().lower()
    if name in PRICES:
        return PRICES[name]
    return PRICES.get(_DATED.sub("", name))
