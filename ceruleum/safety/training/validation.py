"""Judging content classifiers on a validation split of the training data: the split itself
(stratified by role and labels), the default policy's operating point on it, and the figures
compared across models. Used by `finetune` to choose and to report; the evaluation set never
comes near it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import train_test_split

from ceruleum.safety.categories import CATEGORIES, Severity
from ceruleum.safety.classifier import head_names
from ceruleum.safety.features import window_pieces
from ceruleum.safety.training.dataset import Example
from ceruleum.safety.training.train import applies_to, choose_thresholds, filtering_columns

Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Split:
    """The texts of one side of the split, the pieces they are scored by, and their labels."""

    examples: list[Example]
    pieces: list[str]  # each text's windows (the text itself when short)
    owner: npt.NDArray[np.int64]  # the text each piece belongs to
    y: Bools  # (texts, heads)
    applies: Bools  # (texts, heads)
    benign: Bools  # (texts,)

    @classmethod
    def of(cls, examples: list[Example], *, windowed: bool) -> Split:
        texts = [e.text for e in examples]
        pieces, owner = (
            window_pieces(texts) if windowed else (texts, np.arange(len(texts), dtype=np.int64))
        )
        return cls(
            examples=examples,
            pieces=pieces,
            owner=owner,
            y=np.array([e.targets() for e in examples], dtype=bool),
            applies=applies_to(examples),
            benign=np.array([e.benign for e in examples]),
        )

    def per_text(self, piece_probabilities: npt.NDArray[Any]) -> Floats:
        """Each text's worst window."""
        out = np.zeros((len(self.examples), piece_probabilities.shape[1]))
        np.maximum.at(out, self.owner, piece_probabilities)
        return out


def stratum(example: Example) -> str:
    parts = [
        f"{c}:{example.severities[c].wire}"
        for c in CATEGORIES
        if example.severities[c] > Severity.SAFE
    ]
    parts += [d for d, hit in example.detected.items() if hit]
    return f"{example.role}/{'|'.join(parts) or 'benign'}"


def split_examples(
    examples: list[Example], share: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """A stratified split (by role and labels; combinations rarer than 5 pooled)."""
    keys = [stratum(e) for e in examples]
    counts = Counter(keys)
    keys = [k if counts[k] >= 5 else "rare" for k in keys]
    train, valid = train_test_split(
        list(range(len(examples))), test_size=share, random_state=seed, stratify=keys
    )
    return [examples[i] for i in sorted(train)], [examples[i] for i in sorted(valid)]


# --- the operating point ---------------------------------------------------------------------


def operating_point(
    probabilities: Floats, split: Split, target_recall: float, max_benign_fpr: float
) -> dict[str, Any]:
    """Thresholds chosen on these probabilities as train.py chooses them, and what they give."""
    thresholds = choose_thresholds(
        probabilities, split.y, split.benign, split.applies, target_recall, max_benign_fpr
    )
    return figures(probabilities, split, thresholds)


def figures(probabilities: Floats, split: Split, thresholds: npt.NDArray[Any]) -> dict[str, Any]:
    """Per category the recall of medium + high items, the detectors' recall on the texts they
    read, and the share of benign texts the default policy's heads filter."""
    heads = head_names()
    fires = (probabilities >= thresholds) & split.applies
    recall: dict[str, float] = {}
    for head in [*(f"{c}>=medium" for c in CATEGORIES), "jailbreak", "indirect_attack"]:
        column = heads.index(head)
        positives = split.y[:, column] & split.applies[:, column]
        recall[head.split(">=")[0]] = round(float(fires[positives, column].mean()), 4)
    filtered = fires[split.benign][:, filtering_columns()].any(axis=1)
    return {
        "recall": recall,
        "benign_fpr": round(float(filtered.mean()), 4),
        "thresholds": {h: round(float(t), 4) for h, t in zip(heads, thresholds, strict=True)},
    }


def selection_score(point: dict[str, Any]) -> float:
    """The mean recall over the four categories and jailbreak."""
    recall = point["recall"]
    return float(np.mean([recall[c] for c in (*CATEGORIES, "jailbreak")]))


def table(points: dict[str, dict[str, Any]]) -> str:
    names = list(points)
    rows = [f"| measure | {' | '.join(names)} |", "|---" * (len(names) + 1) + "|"]
    for key in (*CATEGORIES, "jailbreak", "indirect_attack"):
        label = f"{key}: recall of medium + high" if key in CATEGORIES else f"{key}: recall"
        cells = " | ".join(f"{p['recall'][key]:.3f}" for p in points.values())
        rows.append(f"| {label} | {cells} |")
    cells = " | ".join(f"{p['benign_fpr']:.1%}" for p in points.values())
    rows.append(f"| benign filtered | {cells} |")
    return "\n".join(rows)
