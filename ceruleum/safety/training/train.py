"""Train the content classifier: python -m ceruleum.safety.training.train [--distill]

1. Load data/safety/train/*.jsonl (never the eval split).
2. With --distill (or when it is missing), distill the bundled all-MiniLM-L6-v2 into static
   token vectors with model2vec (PCA to 256 dimensions) into ceruleum/safety/models/minilm-static.
3. For each stage (fast: static embeddings; full: the MiniLM transformer), features for every
   text (embedding + hashed n-grams) and, per head, a class-balanced logistic regression.
   3-fold cross-validation gives out-of-fold probabilities, from which the thresholds are
   chosen: the heads a default policy filters on ("≥ medium" and the detectors) aim at
   --target-recall of their positives, raised together until at most --max-benign-fpr of the
   benign training texts would be filtered; the others take their best-F1 threshold.
4. The escalation bound: the fast-stage probability from which a text is handed to the full
   stage, chosen so that --escalation-recall of the texts a default policy filters escalate.
5. Refit every head on all training data and write ceruleum/safety/models/content-v1.npz.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from ceruleum.safety.classifier import (
    MODEL_FILE,
    STAGES,
    ClassifierWeights,
    Encoder,
    StageWeights,
    head_names,
    models_dir,
)
from ceruleum.safety.encoder import STATIC_DIR, StaticEncoder, TransformerEncoder, minilm_path
from ceruleum.safety.features import lexical_features
from ceruleum.safety.training.dataset import DATA_DIR, Example, load

# The embedding is unit-length over a few hundred dimensions while each n-gram block is
# unit-length over many sparse ones; scaling the embedding up lets both carry weight under one
# regularisation strength.
EMBEDDING_SCALE = 3.0
C = 1.0
FOLDS = 3
SEED = 20261129
STATIC_DIMS = 256


def distill(target: Path) -> None:
    from model2vec.distill import distill as model2vec_distill

    model = model2vec_distill(model_name=str(minilm_path()), pca_dims=STATIC_DIMS)
    if target.exists():
        shutil.rmtree(target)
    model.save_pretrained(str(target))


def features(encoder: Encoder, texts: list[str]) -> sp.csr_matrix:
    dense = sp.csr_matrix(encoder.embed(texts) * EMBEDDING_SCALE)
    return sp.hstack([dense, lexical_features(texts)], format="csr")


def fit(x: sp.csr_matrix, y: npt.NDArray[np.bool_]) -> LogisticRegression:
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, solver="liblinear")
    model.fit(x, y)
    return model


def out_of_fold(x: sp.csr_matrix, y: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    probabilities = np.zeros(len(y))
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    for train, test in folds.split(np.zeros(len(y)), y):
        probabilities[test] = fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    return probabilities


def pick_threshold(
    probabilities: npt.NDArray[np.float64],
    y: npt.NDArray[np.bool_],
    benign: npt.NDArray[np.bool_],
    *,
    target_recall: float | None,
    max_benign_fpr: float,
) -> float:
    """A head's threshold from its out-of-fold probabilities.

    With a target recall (the heads a default policy filters on: "≥ medium" and the detectors)
    it is the highest threshold that still recalls that share of the positives, raised if need
    be until at most `max_benign_fpr` of the benign texts fire: false alarms on ordinary text
    cost more than a few misses. Without one (the "≥ low" and "≥ high" heads, which annotate or
    serve stricter policies) it is the threshold of the best F1."""
    candidates = np.unique(np.round(probabilities, 4))
    if target_recall is None:
        best, best_f1 = 0.5, -1.0
        for t in candidates:
            predicted = probabilities >= t
            tp = float((predicted & y).sum())
            f1 = 2 * tp / max(1.0, float(predicted.sum() + y.sum()))
            if f1 > best_f1:
                best, best_f1 = float(t), f1
        return best
    positives = np.sort(probabilities[y])[::-1]
    needed = max(1, int(np.ceil(target_recall * len(positives))))
    threshold = float(min(0.5, positives[needed - 1])) if len(positives) else 0.5
    benign_scores = np.sort(probabilities[benign])[::-1]
    allowed = int(np.floor(max_benign_fpr * len(benign_scores)))
    if len(benign_scores) > allowed:
        # Just above the (allowed + 1)-th highest benign score.
        threshold = max(threshold, float(benign_scores[allowed]) + 1e-4)
    return threshold


def filtering_columns() -> list[int]:
    """The heads a default policy filters on: every "≥ medium" head and jailbreak."""
    return [i for i, h in enumerate(head_names()) if h.endswith(">=medium") or h == "jailbreak"]


def applies_to(examples: list[Example]) -> npt.NDArray[np.bool_]:
    """(texts, heads): where a head is read at run time (detectors read one role each)."""
    heads = head_names()
    out = np.ones((len(examples), len(heads)), dtype=bool)
    out[:, heads.index("jailbreak")] = [e.role == "user" for e in examples]
    out[:, heads.index("indirect_attack")] = [e.role == "document" for e in examples]
    return out


def choose_thresholds(
    oof: npt.NDArray[np.float64],
    y_all: npt.NDArray[np.bool_],
    benign: npt.NDArray[np.bool_],
    applies: npt.NDArray[np.bool_],
    target_recall: float,
    max_benign_fpr: float,
) -> npt.NDArray[np.float32]:
    """Every head's threshold, each judged on the texts it is read on. The heads a default
    policy filters on share one false-alarm budget: the largest per-head share of benign texts
    for which, together, at most `max_benign_fpr` of the benign texts are filtered by any of
    them out of fold. Indirect attacks (filtered only when a policy asks) get the same budget on
    benign documents alone; the other heads their best-F1 threshold."""
    heads = head_names()
    filtering = filtering_columns()
    out = np.zeros(len(heads), dtype=np.float32)

    def pick(column: int, recall: float | None, budget: float) -> float:
        rows = applies[:, column]
        return pick_threshold(
            oof[rows, column],
            y_all[rows, column],
            benign[rows],
            target_recall=recall,
            max_benign_fpr=budget,
        )

    for column, head in enumerate(heads):
        if column not in filtering:
            recall = target_recall if head == "indirect_attack" else None
            out[column] = pick(column, recall, max_benign_fpr)
    for budget in np.linspace(max_benign_fpr, 0.0, 61):
        for column in filtering:
            out[column] = pick(column, target_recall, float(budget))
        fires: npt.NDArray[np.bool_] = (oof >= out) & applies
        if fires[benign][:, filtering].any(axis=1).mean() <= max_benign_fpr:
            break
    return out


def summary(
    probabilities: npt.NDArray[np.float64], y: npt.NDArray[np.bool_], threshold: float
) -> dict[str, float]:
    predicted = probabilities >= threshold
    tp = int((predicted & y).sum())
    return {
        "threshold": round(threshold, 4),
        "positives": int(y.sum()),
        "cv_recall": round(tp / max(1, int(y.sum())), 4),
        "cv_precision": round(tp / max(1, int(predicted.sum())), 4),
    }


def train_stage(
    x: sp.csr_matrix, y_all: npt.NDArray[np.bool_]
) -> tuple[StageWeights, npt.NDArray[np.float64]]:
    """The stage's weights (thresholds still unset) and its out-of-fold probabilities."""
    heads = head_names()
    dims = x.shape[1] - lexical_features(["x"]).shape[1]
    dense = np.zeros((dims, len(heads)), dtype=np.float32)
    lexical = sp.lil_matrix((x.shape[1] - dims, len(heads)), dtype=np.float32)
    bias = np.zeros(len(heads), dtype=np.float32)
    oof_all = np.zeros(y_all.shape)
    for column in range(len(heads)):
        y = y_all[:, column]
        oof_all[:, column] = out_of_fold(x, y)
        model = fit(x, y)
        dense[:, column] = model.coef_[0][:dims] * EMBEDDING_SCALE
        lexical[:, column] = model.coef_[0][dims:, None]
        bias[column] = model.intercept_[0]
    thresholds = np.full(len(heads), 0.5, dtype=np.float32)
    weights = StageWeights(dense=dense, lexical=lexical.tocsr(), bias=bias, thresholds=thresholds)
    return weights, oof_all


def escalation_bound(
    fast_oof: npt.NDArray[np.float64], y_all: npt.NDArray[np.bool_], recall: float
) -> float:
    """The highest fast-stage bound above which `recall` of the texts a default policy filters
    (a "≥ medium" category or a detector) still reach the full stage, out of fold."""
    filtered = y_all[:, filtering_columns()].any(axis=1)
    peaks = np.sort(fast_oof[filtered].max(axis=1))[::-1]
    needed = max(1, int(np.ceil(recall * len(peaks))))
    return float(peaks[needed - 1])


def stage_report(
    name: str,
    oof: npt.NDArray[np.float64],
    y_all: npt.NDArray[np.bool_],
    applies: npt.NDArray[np.bool_],
    thresholds: npt.NDArray[np.float32],
) -> dict[str, Any]:
    report = {}
    for column, head in enumerate(head_names()):
        rows = applies[:, column]
        report[head] = summary(oof[rows, column], y_all[rows, column], float(thresholds[column]))
        print(name, head, json.dumps(report[head]), flush=True)
    return report


def data_digest(examples: list[Example]) -> str:
    digest = hashlib.sha256()
    for example in examples:
        digest.update(example.text.encode())
    return digest.hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=models_dir() / MODEL_FILE)
    parser.add_argument("--target-recall", type=float, default=0.92)
    parser.add_argument("--max-benign-fpr", type=float, default=0.03)
    parser.add_argument("--escalation-recall", type=float, default=0.99)
    parser.add_argument("--oof-out", type=Path, default=None, help="save out-of-fold scores")
    parser.add_argument("--retune", type=Path, default=None, help="thresholds only, from --oof-out")
    parser.add_argument("--distill", action="store_true", help="distill the static model anew")
    args = parser.parse_args()

    started = time.perf_counter()
    static_dir = models_dir() / STATIC_DIR
    if args.distill or not static_dir.exists():
        distill(static_dir)
    examples = load("train", args.data)
    texts = [e.text for e in examples]
    y_all = np.array([e.targets() for e in examples], dtype=bool)
    benign = np.array([e.benign for e in examples])
    applies = applies_to(examples)
    digest = data_digest(examples)
    stages: dict[str, StageWeights] = {}
    oof: dict[str, npt.NDArray[np.float64]] = {}
    if args.retune is not None:
        # New thresholds for the weights already fitted, from their saved out-of-fold scores.
        current = ClassifierWeights.load(args.out)
        if current.metadata.get("training_data_sha256_16") != digest:
            parser.error("the training data changed since that model was fitted: train anew")
        saved_oof = np.load(args.retune)
        stages = dict(current.stages)
        oof = {name: saved_oof[name] for name in STAGES}
    else:
        encoders: dict[str, Encoder] = {
            "fast": StaticEncoder(static_dir),
            "full": TransformerEncoder(),
        }
        for name in STAGES:
            stages[name], oof[name] = train_stage(features(encoders[name], texts), y_all)
        if args.oof_out is not None:  # to choose thresholds again without refitting
            saved: dict[str, Any] = dict(oof)
            np.savez(args.oof_out, **saved)
    reports: dict[str, Any] = {}
    for name in STAGES:
        thresholds = choose_thresholds(
            oof[name], y_all, benign, applies, args.target_recall, args.max_benign_fpr
        )
        stages[name] = dataclasses.replace(stages[name], thresholds=thresholds)
        reports[name] = stage_report(name, oof[name], y_all, applies, thresholds)
    escalate_at = escalation_bound(oof["fast"], y_all, args.escalation_recall)
    escalated_benign = float((oof["fast"][benign].max(axis=1) >= escalate_at).mean())
    print(f"escalate at {escalate_at:.4f}; benign training texts escalated: {escalated_benign:.1%}")
    weights = ClassifierWeights(
        stages=stages,
        escalate_at=escalate_at,
        heads=head_names(),
        metadata={
            "trained_on": len(examples),
            "training_data_sha256_16": digest,
            "c": C,
            "embedding_scale": EMBEDDING_SCALE,
            "target_recall": args.target_recall,
            "escalation_recall": args.escalation_recall,
            "max_benign_fpr": args.max_benign_fpr,
            "benign_escalated_out_of_fold": round(escalated_benign, 4),
            "cross_validation": reports,
        },
    )
    weights.save(args.out)
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
