"""The trained content classifier: harm categories with severities, and attack detectors.

Every head is a logistic regression over an embedding and hashed n-grams (`features.py`): the
categories are ordinal, one head per level ("violence ≥ low", "≥ medium", "≥ high"), and a text
gets the highest level whose head clears its threshold; the detectors (jailbreak, indirect attack)
are one head each.

Two stages run as a cascade. The fast stage reads static MiniLM embeddings (distilled from the
bundled all-MiniLM-L6-v2, microseconds a text); a text on which any fast head comes near firing
is read again by the full stage, whose verdict is final: MiniLM fine-tuned on our labels
(`tuned.py`) where it is shipped, blended per head with the fast stage's n-gram reading where
its training chose so (`fast_share`), else the same logistic heads over the MiniLM
transformer's embedding (~8 ms a short text on one core). Ordinary traffic is thus decided by
the fast stage and everything that looks risky by the better one. The logistic weights, their
thresholds and the escalation bound are written by `ceruleum.safety.training.train`, the
fine-tuned model by `ceruleum.safety.training.crossfit` (see docs/safety.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ceruleum.safety.categories import CATEGORIES, Severity
from ceruleum.safety.features import (
    HASH_FEATURES,
    lexical_features,
    window_pieces,
    worst_per_text,
)

LEVELS = (Severity.LOW, Severity.MEDIUM, Severity.HIGH)
DETECTORS = ("jailbreak", "indirect_attack")
MODEL_FILE = "content-v1.npz"
STAGES = ("fast", "full")
Array = npt.NDArray[np.float32]


def head_names() -> list[str]:
    """The output heads, in the weight matrices' column order."""
    names = [f"{c}>={level.wire}" for c in CATEGORIES for level in LEVELS]
    return [*names, *DETECTORS]


def models_dir() -> Path:
    return Path(str(resources.files("ceruleum.safety") / "models"))


class Encoder(Protocol):
    def embed(self, texts: Sequence[str]) -> Array: ...


@dataclass(frozen=True, slots=True)
class StageWeights:
    dense: Array  # (embedding dims, heads)
    lexical: sp.csr_matrix  # (2 * HASH_FEATURES, heads), only the rows training touched
    bias: Array  # (heads,)
    thresholds: Array  # (heads,)

    def logits(self, embeddings: Array, lexical: sp.csr_matrix) -> Array:
        sparse_part = (lexical @ self.lexical).toarray()
        out: Array = embeddings @ self.dense + sparse_part + self.bias
        return out


@dataclass(frozen=True, slots=True)
class ClassifierWeights:
    stages: dict[str, StageWeights]
    escalate_at: float  # a fast-stage probability from which the full stage decides
    heads: list[str]
    metadata: dict[str, Any]

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {}
        for name, stage in self.stages.items():
            rows = np.unique(stage.lexical.nonzero()[0]).astype(np.int32)
            arrays[f"{name}_dense"] = stage.dense.astype(np.float32)
            arrays[f"{name}_lexical_rows"] = rows
            arrays[f"{name}_lexical_values"] = stage.lexical[rows].toarray().astype(np.float16)
            arrays[f"{name}_bias"] = stage.bias.astype(np.float32)
            arrays[f"{name}_thresholds"] = stage.thresholds.astype(np.float32)
        meta = {**self.metadata, "heads": self.heads, "escalate_at": self.escalate_at}
        np.savez_compressed(path, metadata=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path: Path | None = None) -> ClassifierWeights:
        """The given file, or the model shipped with the package."""
        with np.load(path or models_dir() / MODEL_FILE) as data:
            metadata = json.loads(str(data["metadata"]))
            heads = list(metadata.pop("heads"))
            if heads != head_names():
                raise ValueError("the classifier file does not match this version's heads")
            escalate_at = float(metadata.pop("escalate_at"))
            stages = {}
            for name in STAGES:
                rows = data[f"{name}_lexical_rows"]
                # float64 like the n-gram features: a product of mixed types copies these
                # millions of weights on every call (2 ms a text, bitwise the same result).
                values = data[f"{name}_lexical_values"].astype(np.float64)
                columns = np.tile(np.arange(len(heads)), len(rows))
                lexical = sp.csr_matrix(
                    (values.ravel(), (np.repeat(rows, len(heads)), columns)),
                    shape=(2 * HASH_FEATURES, len(heads)),
                )
                stages[name] = StageWeights(
                    dense=data[f"{name}_dense"],
                    lexical=lexical,
                    bias=data[f"{name}_bias"],
                    thresholds=data[f"{name}_thresholds"],
                )
        return cls(stages=stages, escalate_at=escalate_at, heads=heads, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Scores:
    """One text's head probabilities and what they mean."""

    probabilities: dict[str, float]
    severities: dict[str, Severity]
    detected: dict[str, bool]
    stage: str  # which stage decided


def _sigmoid(logits: Array) -> Array:
    out: Array = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    return out


class Scorer(Protocol):
    """One stage's reader: per-window head probabilities and the thresholds that judge them."""

    @property
    def thresholds(self) -> Array: ...

    def window_probabilities(self, pieces: list[str]) -> Array:
        """(pieces, heads) probabilities, each piece read as one window."""
        ...


class LogisticStage:
    """A stage of the logistic heads over an encoder's embedding and the hashed n-grams."""

    def __init__(self, encoder: Encoder, weights: StageWeights) -> None:
        self._encoder = encoder
        self._weights = weights

    @property
    def thresholds(self) -> Array:
        return self._weights.thresholds

    def window_probabilities(self, pieces: list[str]) -> Array:
        embeddings = self._encoder.embed(pieces)
        return _sigmoid(self._weights.logits(embeddings, lexical_features(pieces)))


def blend_logits(probabilities: Sequence[npt.NDArray[Any]], weights: npt.NDArray[Any]) -> Array:
    """Per head, the weighted mean of several readers' logits, as a probability.
    `probabilities` holds one (rows, heads) array per reader, `weights` is (readers, heads)."""
    logits = np.zeros(np.shape(probabilities[0]), dtype=np.float64)
    for reader, weight in zip(probabilities, weights, strict=True):
        clipped = np.clip(np.asarray(reader, dtype=np.float64), 1e-7, 1.0 - 1e-7)
        logits += weight * np.log(clipped / (1.0 - clipped))
    return _sigmoid(logits.astype(np.float32))


class ContentClassifier:
    def __init__(
        self,
        stages: dict[str, Scorer],
        *,
        escalate_at: float,
        fast_share: Array | None = None,
    ) -> None:
        """`stages` holds "fast" and "full"; a fast probability from `escalate_at` up hands
        the text to the full stage. `fast_share`, where given, is per head the fast stage's
        weight in the full stage's verdict (`blend_logits` of both stages' readings of each
        window, as training/crossfit.py chose it): the fine-tuned transformer reads meaning, the
        fast stage's n-grams boilerplate such as jailbreak templates and hidden instructions.
        The full stage's thresholds then judge the blend."""
        if set(stages) != set(STAGES):
            raise ValueError(f"the classifier needs the stages {STAGES}")
        self._stages = stages
        self._escalate_at = escalate_at
        self._heads = head_names()
        self._column = {name: i for i, name in enumerate(self._heads)}
        share = np.zeros(len(self._heads), dtype=np.float32) if fast_share is None else fast_share
        if share.shape != (len(self._heads),):
            raise ValueError("the fast stage's share needs one weight per head")
        self._fast_share = share.astype(np.float32)

    @property
    def fast_share(self) -> Array:
        return self._fast_share

    @property
    def escalate_at(self) -> float:
        return self._escalate_at

    def scorer(self, stage: str) -> Scorer:
        return self._stages[stage]

    def classify(self, texts: Sequence[str]) -> list[Scores]:
        pieces, owner = window_pieces(texts)
        fast = (
            self._stages["fast"].window_probabilities(pieces)
            if pieces
            else np.zeros((0, len(self._heads)), dtype=np.float32)
        )
        probabilities = worst_per_text(fast, owner, len(texts))
        stages = ["fast"] * len(texts)
        risky = [i for i, row in enumerate(probabilities) if row.max() >= self._escalate_at]
        if risky:
            chosen = np.flatnonzero(np.isin(owner, risky))
            full = self._stages["full"].window_probabilities([pieces[i] for i in chosen])
            if self._fast_share.any():
                # The fast stage's reading of these windows is at hand: blend, don't reread.
                shares = np.stack([1.0 - self._fast_share, self._fast_share])
                full = blend_logits([full, fast[chosen]], shares)
            probabilities[risky] = worst_per_text(full, owner[chosen], len(texts))[risky]
            for i in risky:
                stages[i] = "full"
        return [self._scores(row, stage) for row, stage in zip(probabilities, stages, strict=True)]

    def _scores(self, row: Array, stage: str) -> Scores:
        # A text the fast stage keeps is one on which no head came near firing: it is safe.
        hits = row >= self._stages[stage].thresholds
        if stage == "fast":
            hits[:] = False
        severities = {}
        for category in CATEGORIES:
            low, medium, high = (hits[self._column[f"{category}>={lv.wire}"]] for lv in LEVELS)
            # Ordinal and consistent: "high" needs the "medium" head too, so a stricter-policy
            # head alone never filters at a default policy.
            severity = Severity.SAFE
            if low or medium:
                severity = Severity.LOW
            if medium:
                severity = Severity.HIGH if high else Severity.MEDIUM
            severities[category] = severity
        return Scores(
            probabilities={h: float(p) for h, p in zip(self._heads, row, strict=True)},
            severities=severities,
            detected={d: bool(hits[self._column[d]]) for d in DETECTORS},
            stage=stage,
        )
