"""Sharing the false-alarm budget among the heads a default policy filters on, so that the
weakest category gets what the others can spare.

train.py's `choose_thresholds` gives every filtering head the same share of benign texts. Issue 5
sets a recall target per category, though, and a category whose positives sit among harmless
texts (violence near war history and "kill the process") needs more of the budget than one
that separates cleanly. `maximin_thresholds` starts every head above all benign texts, then
repeatedly lowers the threshold of the head with the lowest recall, one benign text at a time,
while the default policy's heads together filter at most the allowed share of benign texts. No
head goes below the threshold that already reaches the target recall.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ceruleum.safety.training.train import choose_thresholds, filtering_columns

STEP_ABOVE = 1e-4


def float_below(value: float) -> float:
    """The largest float32 not above `value`: thresholds are stored as float32, and one rounded
    up would miss the positive it was set to recall."""
    single = np.float32(value)
    return float(np.nextafter(single, np.float32(0)) if float(single) > value else single)


def maximin_thresholds(
    oof: npt.NDArray[np.float64],
    y: npt.NDArray[np.bool_],
    benign: npt.NDArray[np.bool_],
    applies: npt.NDArray[np.bool_],
    target_recall: float,
    max_benign_fpr: float,
) -> npt.NDArray[np.float32]:
    """Every head's threshold: the non-filtering heads as `choose_thresholds` sets them, the
    filtering heads by the maximin rule above (all judged on out-of-fold probabilities)."""
    out = choose_thresholds(oof, y, benign, applies, target_recall, max_benign_fpr)
    columns = filtering_columns()
    allowed = int(np.floor(max_benign_fpr * int(benign.sum())))
    floors: dict[int, float] = {}
    steps: dict[int, npt.NDArray[np.float64]] = {}
    for column in columns:
        rows = applies[:, column]
        positives = np.sort(oof[rows & y[:, column], column])[::-1]
        needed = max(1, int(np.ceil(target_recall * len(positives))))
        floors[column] = float_below(float(positives[needed - 1])) if len(positives) else 0.5
        # Each benign score, highest first: admitting k of them puts the threshold just above
        # the (k + 1)-th.
        steps[column] = np.sort(oof[rows & benign, column])[::-1] + STEP_ABOVE
        out[column] = max(floors[column], float(steps[column][0]) if len(steps[column]) else 0.0)
    admitted = dict.fromkeys(columns, 0)

    def recall(column: int, threshold: float) -> float:
        positives = applies[:, column] & y[:, column]
        return float((oof[positives, column] >= threshold).mean()) if positives.any() else 1.0

    def benign_filtered(thresholds: npt.NDArray[np.float32]) -> int:
        fires = (oof >= thresholds) & applies
        return int(fires[benign][:, columns].any(axis=1).sum())

    open_heads = set(columns)
    while open_heads:
        column = min(open_heads, key=lambda c: (recall(c, float(out[c])), c))
        before = recall(column, float(out[column]))
        trial = out.copy()
        k = admitted[column]
        # Lower the head one benign text at a time until its recall rises or it reaches its floor.
        while True:
            k += 1
            lower = float(steps[column][k]) if k < len(steps[column]) else floors[column]
            trial[column] = max(floors[column], lower)
            if recall(column, float(trial[column])) > before or trial[column] <= floors[column]:
                break
        if trial[column] >= out[column] or benign_filtered(trial) > allowed:
            open_heads.discard(column)
            continue
        out, admitted[column] = trial, k
        if out[column] <= floors[column]:
            open_heads.discard(column)
    return out
