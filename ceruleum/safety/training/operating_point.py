"""Choose the shipped full stage's false-alarm budget on the development set.

    python -m ceruleum.safety.training.operating_point --oof OOF.npz [--write]

`crossfit` sets thresholds so that the default policy's heads filter at most a given share of
the benign *training* texts, out of fold. That share is a proxy: the training set's hard
negatives were written to sit as close to the harmful texts as possible, so the same thresholds
filter a different share of other benign text. This script reads the out-of-fold probabilities
that `crossfit --save-oof` wrote for the shipped pipeline and, per candidate budget, sets the
thresholds as crossfit does (maximin shares of the shipped blend) and measures them through the
served cascade on `data/safety/dev`: labelled texts kept out of training, used to choose, and
never the held-out `data/safety/eval`, which only measures. The budget chosen is the largest whose
development false-positive rate stays within --dev-max-fpr; `--write` puts its thresholds into
the shipped model's JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ceruleum.safety.classifier import Array, ContentClassifier, Scorer, head_names, models_dir
from ceruleum.safety.policy import ContentFilterPolicy
from ceruleum.safety.service import load_classifier
from ceruleum.safety.training.budget import maximin_thresholds
from ceruleum.safety.training.crossfit import blended
from ceruleum.safety.training.dataset import DATA_DIR, load
from ceruleum.safety.training.evaluation import evaluate
from ceruleum.safety.training.top_layers import share
from ceruleum.safety.training.validation import Split, figures, table
from ceruleum.safety.tuned import TUNED_FILE, TunedClassifier, metadata_path

BUDGETS = "0.025,0.03,0.035,0.04,0.045,0.05"


class Rethresholded:
    """A stage's reader with other thresholds; each window is read once however often asked."""

    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer
        self._cache: dict[str, Array] = {}
        self.candidate: Array = scorer.thresholds

    @property
    def thresholds(self) -> Array:
        return self.candidate

    def window_probabilities(self, pieces: list[str]) -> Array:
        missing = sorted({p for p in pieces if p not in self._cache})
        if missing:
            for piece, row in zip(missing, self._scorer.window_probabilities(missing), strict=True):
                self._cache[piece] = row
        if not pieces:
            return np.zeros((0, len(self.candidate)), dtype=np.float32)
        return np.stack([self._cache[p] for p in pieces]).astype(np.float32)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The development figures the choice rests on, without the texts."""
    recall = {c: f["recall_medium_and_high"] for c, f in report["categories"].items()}
    recall["jailbreak"] = report["jailbreak"]["recall"]
    recall["indirect_attack"] = report["indirect_attack"]["recall"]
    benign = report["benign"]
    return {
        "recall": recall,
        "benign_fpr": benign["false_positive_rate"],
        "benign_filtered": f"{benign['false_positives']} of {benign['items']}",
    }


def choose(points: Sequence[tuple[float, dict[str, Any]]], dev_max_fpr: float) -> float | None:
    """The largest budget whose development false-positive rate is within `dev_max_fpr`."""
    within = [budget for budget, dev in points if dev["benign_fpr"] <= dev_max_fpr + 1e-12]
    return max(within) if within else None


def shares(text: str) -> list[float]:
    """An argparse type: comma-separated shares between 0 and 1, in increasing order."""
    return sorted(share(part) for part in text.split(","))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--oof", type=Path, required=True, help="crossfit --save-oof output")
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--model",
        type=Path,
        default=models_dir() / TUNED_FILE,
        help="where --write puts the thresholds: the shipped model (default) or a copy of it",
    )
    parser.add_argument(
        "--budgets", type=shares, default=BUDGETS, help="shares of benign training texts"
    )
    parser.add_argument("--dev-max-fpr", type=share, default=0.025)
    parser.add_argument("--target-recall", type=share, default=0.92)
    parser.add_argument("--write", action="store_true", help="ship the chosen thresholds")
    args = parser.parse_args()
    if not args.oof.is_file():
        parser.error(f"no out-of-fold file at {args.oof} (crossfit --save-oof writes one)")
    dev_examples = load("dev", args.data)
    if not dev_examples:
        parser.error(f"no development texts in {args.data / 'dev'}")

    everything = Split.of(load("train", args.data), windowed=True)
    with np.load(args.oof) as saved:
        tuned, fast = saved["tuned"], saved["fast"]
        if not np.array_equal(saved["y"], everything.y):
            parser.error("the out-of-fold file was made on other training data")
    classifier = load_classifier()
    full = classifier.scorer("full")
    if not isinstance(full, TunedClassifier):
        parser.error("no fine-tuned full stage is shipped")
    blend = blended(tuned, fast, full.fast_stage_share().astype(np.float64))
    reader = Rethresholded(full)
    served = ContentClassifier(
        {"fast": classifier.scorer("fast"), "full": reader},
        escalate_at=classifier.escalate_at,
        fast_share=classifier.fast_share,
    )
    policy = ContentFilterPolicy.from_dict(None)
    out_of_fold: dict[str, dict[str, Any]] = {}
    development: list[tuple[float, dict[str, Any]]] = []
    for budget in args.budgets:
        thresholds = maximin_thresholds(
            blend, everything.y, everything.benign, everything.applies, args.target_recall, budget
        )
        point = out_of_fold[f"{budget:.1%}"] = figures(blend, everything, thresholds)
        # Judge by the thresholds as they would be written (rounded), not as computed.
        written = point["thresholds"]
        reader.candidate = np.array([written[h] for h in head_names()], dtype=np.float32)
        dev = summary(evaluate(served, dev_examples, policy))
        development.append((budget, dev))
        print(json.dumps({"budget": budget, **dev}), flush=True)
    print(f"\nout of fold, by budget:\n{table(out_of_fold)}")
    chosen = choose(development, args.dev_max_fpr)
    print(f"chosen budget: {chosen}")
    if chosen is None or not args.write:
        return 0 if chosen is not None else 1
    path = metadata_path(args.model)
    metadata = json.loads(path.read_text())
    budgets = ",".join(f"{b:g}" for b in args.budgets)
    metadata["thresholds"] = out_of_fold[f"{chosen:.1%}"]["thresholds"]
    metadata["threshold_rule"] = (
        f"maximin allocation (training/budget.py) on out-of-fold probabilities of the blend, "
        f"target recall {args.target_recall}, at most {chosen:.1%} of benign training texts "
        f"filtered by the default policy's heads: the largest budget of {budgets} whose "
        f"false-positive rate on data/safety/dev is at most {args.dev_max_fpr:.1%}"
    )
    metadata["operating_point"] = {
        "chosen_budget": chosen,
        "dev_max_fpr": args.dev_max_fpr,
        "out_of_fold": {
            k: {"recall": v["recall"], "benign_fpr": v["benign_fpr"]}
            for k, v in out_of_fold.items()
        },
        "development": {f"{b:.1%}": d for b, d in development},
    }
    path.write_text(json.dumps(metadata, indent=1) + "\n")
    print(f"wrote the thresholds of budget {chosen:.1%} into {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
