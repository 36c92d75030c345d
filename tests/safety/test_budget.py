"""Sharing the false-alarm budget (training/budget.py): the weakest filtering head gets what the
others can spare, the default policy's heads together stay within the budget, and no head goes
below the threshold that already reaches the target recall."""

from __future__ import annotations

import numpy as np

from ceruleum.safety.classifier import head_names
from ceruleum.safety.training.budget import maximin_thresholds
from ceruleum.safety.training.train import choose_thresholds, filtering_columns

HEADS = head_names()
VIOLENCE = HEADS.index("violence>=medium")
HATE = HEADS.index("hate>=medium")


def synthetic(seed: int = 0) -> tuple[np.ndarray, ...]:
    """Benign texts and positives of every filtering head; violence's positives overlap the
    benign scores, the other heads' barely do."""
    rng = np.random.default_rng(seed)
    benign_count, positives_per_head = 1000, 100
    columns = filtering_columns()
    rows = benign_count + positives_per_head * len(columns)
    oof = rng.uniform(0.0, 0.3, size=(rows, len(HEADS)))
    y = np.zeros((rows, len(HEADS)), dtype=bool)
    benign = np.zeros(rows, dtype=bool)
    benign[:benign_count] = True
    # A few benign texts score high on each head, more on violence.
    for column in columns:
        share = 0.05 if column == VIOLENCE else 0.01
        loud = rng.choice(benign_count, int(share * benign_count), replace=False)
        oof[loud, column] = rng.uniform(0.5, 0.95, size=len(loud))
    for n, column in enumerate(columns):
        start = benign_count + n * positives_per_head
        block = slice(start, start + positives_per_head)
        y[block, column] = True
        low = 0.5 if column == VIOLENCE else 0.8
        oof[block, column] = rng.uniform(low, 1.0, size=positives_per_head)
    applies = np.ones_like(y)
    return oof, y, benign, applies


def recall(oof: np.ndarray, y: np.ndarray, thresholds: np.ndarray, column: int) -> float:
    return float((oof[y[:, column], column] >= thresholds[column]).mean())


def filtered_share(
    oof: np.ndarray, benign: np.ndarray, applies: np.ndarray, thresholds: np.ndarray
) -> float:
    fires = (oof >= thresholds) & applies
    return float(fires[benign][:, filtering_columns()].any(axis=1).mean())


def test_the_weakest_head_gets_more_of_the_budget() -> None:
    oof, y, benign, applies = synthetic()
    equal = choose_thresholds(oof, y, benign, applies, 0.92, 0.03)
    maximin = maximin_thresholds(oof, y, benign, applies, 0.92, 0.03)
    assert filtered_share(oof, benign, applies, maximin) <= 0.03
    assert recall(oof, y, maximin, VIOLENCE) > recall(oof, y, equal, VIOLENCE)
    weakest = min(recall(oof, y, maximin, c) for c in filtering_columns())
    assert weakest >= min(recall(oof, y, equal, c) for c in filtering_columns())


def test_no_head_goes_below_its_target_recall_threshold() -> None:
    oof, y, benign, applies = synthetic(1)
    generous = maximin_thresholds(oof, y, benign, applies, 0.5, 1.0)
    for column in filtering_columns():
        assert recall(oof, y, generous, column) <= 0.51 + 1e-9
        assert recall(oof, y, generous, column) >= 0.5


def test_non_filtering_heads_keep_their_own_rule() -> None:
    oof, y, benign, applies = synthetic(2)
    equal = choose_thresholds(oof, y, benign, applies, 0.92, 0.03)
    maximin = maximin_thresholds(oof, y, benign, applies, 0.92, 0.03)
    others = [c for c in range(len(HEADS)) if c not in filtering_columns()]
    np.testing.assert_array_equal(equal[others], maximin[others])
    assert HATE in filtering_columns()
