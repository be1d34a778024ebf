"""A generated mixed-type table: numbers, text categories, booleans, small integers, and missing values.

scikit-learn's packaged datasets are all numeric and complete, and nothing may be downloaded, so the tests
and the serving benchmark generate this one: a customer-churn table whose label depends on every kind of
column, so a model that ignores a kind scores visibly worse. Seeded, so every caller gets the same rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CHURN_TARGET = "churned"
PLANS = ("basic", "plus", "premium")
REGIONS = ("north", "south", "east", "west", "centre", "islands")


def churn_table(rows: int = 1200, seed: int = 7) -> pd.DataFrame:
    """Return the churn table: `churned` ("yes"/"no") from age, income, plan, region, card and support calls.

    Missing values (drawn, so about): age 6 %, income 10 %, plan 4 % (text), has_card 5 % (a boolean column
    therefore stored as objects). `support_calls` is an integer with 7 levels (read as categorical).
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows).astype(float)
    income = np.round(rng.lognormal(10.5, 0.5, rows), 2)
    plan = rng.choice(PLANS, rows, p=[0.5, 0.3, 0.2])
    region = rng.choice(REGIONS, rows)
    has_card = rng.random(rows) < 0.6
    support_calls = rng.integers(0, 7, rows)
    score = 6.0 * (
        -1.2
        + 0.9 * (plan == "basic")
        - 0.8 * (plan == "premium")
        + 0.35 * support_calls
        - 0.9 * has_card
        - 0.025 * (age - 45)
        - 0.6 * np.log(income / 36_000)
        + 0.7 * (region == "islands")
    )
    churned = np.where(rng.random(rows) < 1 / (1 + np.exp(-score)), "yes", "no")
    frame = pd.DataFrame(
        {
            "age": age,
            "income": income,
            "plan": pd.Series(plan, dtype=object),
            "region": pd.Series(region, dtype=object),
            "has_card": pd.Series(has_card, dtype=object),
            "support_calls": support_calls,
            CHURN_TARGET: churned,
        }
    )
    for column, share in (("age", 0.06), ("income", 0.10), ("plan", 0.04), ("has_card", 0.05)):
        frame.loc[rng.random(rows) < share, column] = None
    return frame
