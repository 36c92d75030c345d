"""Finished cross-fit folds on disk, so that a cross-fit can stop and go on later.

A four-layer cross-fit takes about two hours on two cores without AVX-512: longer than a session
that must also measure what it made. Each fold is independent of the others, so `crossfit
--fold-dir DIR` writes every finished fold's out-of-fold probabilities to DIR and, when run
again with the same data and settings, reads them instead of training the fold again. The
settings (and a digest of the training data) are stored with each fold and must match exactly:
a fold made from other data or with other settings is refused, never mixed in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ceruleum.safety.training.validation import Floats


@dataclass(frozen=True, slots=True)
class FoldResult:
    held: np.ndarray  # the held-out texts' indices
    tuned: Floats  # (epochs, held texts, heads): the fine-tuned model after each epoch
    fast: Floats  # (held texts, heads): the fast stage fitted on the other folds
    seconds_per_epoch: float


class FoldMismatch(ValueError):
    """A stored fold was made from other data, settings or a different split."""


def fold_path(directory: Path, number: int) -> Path:
    return directory / f"fold{number}.npz"


def save_fold(directory: Path, number: int, settings: dict[str, Any], result: FoldResult) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = fold_path(directory, number)
    partial = path.with_suffix(".partial.npz")
    np.savez_compressed(
        partial,
        settings=np.array(json.dumps(settings, sort_keys=True)),
        held=result.held,
        tuned=result.tuned.astype(np.float32),
        fast=result.fast.astype(np.float32),
        seconds_per_epoch=np.array(result.seconds_per_epoch),
    )
    partial.replace(path)  # a fold interrupted while written is never read as finished
    return path


def load_fold(
    directory: Path, number: int, settings: dict[str, Any], held: np.ndarray
) -> FoldResult | None:
    """The stored fold `number`, or None if there is none; FoldMismatch if it does not belong
    to this run."""
    path = fold_path(directory, number)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as stored:
        stored_settings = json.loads(str(stored["settings"]))
        if stored_settings != json.loads(json.dumps(settings, sort_keys=True)):
            changed = sorted(
                key
                for key in {*stored_settings, *settings}
                if stored_settings.get(key) != settings.get(key)
            )
            raise FoldMismatch(f"{path} was made with other settings or data: {changed}")
        if not np.array_equal(stored["held"], held):
            raise FoldMismatch(f"{path} holds out other texts than this run's fold {number}")
        return FoldResult(
            held=stored["held"],
            tuned=stored["tuned"].astype(np.float64),
            fast=stored["fast"].astype(np.float64),
            seconds_per_epoch=float(stored["seconds_per_epoch"]),
        )
