"""Cross-fitted fine-tuning: the epoch, the blend with the fast stage and the thresholds are
chosen on out-of-fold predictions over all the training data, then one model is trained on all
of it.

python -m ceruleum.safety.training.crossfit [--folds 5] [--ship]

Why: `finetune`'s 20% validation split holds about 460 benign texts, so the false-alarm
budget that nine heads share rests on one or two texts per head, and the thresholds chosen there
let more benign text through elsewhere. Out of fold, every training text is scored once by a
model that never saw it: five times the texts to choose on, and the shipped model trains on all
of them.

1. Split data/safety/train (never dev or eval) into --folds stratified folds.
2. Per fold, fine-tune MiniLM's top layers on the other folds (`top_layers.fit_top`) and score the
   held-out texts window by window after every epoch; fit the fast stage's logistic heads
   (train.py's features over the static embeddings) on the same folds and score the same windows.
3. Choose the epoch whose out-of-fold predictions score best at the default operating point.
4. Per head, a blend in logit space of the fine-tuned and the fast stage's probabilities: the
   weight of the fast stage (from --blend-weights) that recalls the most positives at the score
   that 1% of benign texts reach. The fast stage's n-grams read what the transformer's mean pool
   blurs (jailbreak boilerplate, instructions hidden in documents).
5. Thresholds on the blended out-of-fold probabilities: the heads a default policy filters on
   share the false-alarm budget by --allocation: "equal" shares (train.py's `choose_thresholds`)
   or "maximin" (training/budget.py: the weakest category first).
6. With --ship, train on all the data for the chosen number of epochs and write the weights and a
   JSON of settings, blend weights, thresholds and out-of-fold figures; the served cascade
   (`service.load_classifier`) then blends as chosen here.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from torch import Tensor

from ceruleum.engine.sentence_models import load_sentence_transformer
from ceruleum.safety.classifier import blend_logits, head_names, models_dir
from ceruleum.safety.encoder import StaticEncoder, minilm_path
from ceruleum.safety.training.budget import maximin_thresholds
from ceruleum.safety.training.dataset import Example, load
from ceruleum.safety.training.fold_store import (
    FoldMismatch,
    FoldResult,
    fold_path,
    load_fold,
    save_fold,
)
from ceruleum.safety.training.top_layers import (
    add_training_options,
    fit_top,
    latency,
    lower_states,
    predict,
)
from ceruleum.safety.training.train import (
    choose_thresholds,
    data_digest,
    features,
    fit,
)
from ceruleum.safety.training.validation import (
    Floats,
    Split,
    figures,
    operating_point,
    selection_score,
    stratum,
    table,
)
from ceruleum.safety.tuned import TUNED_FILE, Base, TunedClassifier, TunedTop, metadata_path

BLEND_AT_BENIGN_SHARE = 0.01


def folds_of(examples: list[Example], count: int, seed: int) -> list[np.ndarray]:
    """Held-out indices per fold, stratified by role and labels (rare combinations pooled)."""
    keys = [stratum(e) for e in examples]
    counts = Counter(keys)
    keys = [k if counts[k] >= count else "rare" for k in keys]
    splitter = StratifiedKFold(n_splits=count, shuffle=True, random_state=seed)
    return [held for _, held in splitter.split(np.zeros(len(keys)), keys)]


def fast_stage_probabilities(train: Split, held: Split) -> Floats:
    """The fast stage's logistic heads fitted on `train`, per held-out window."""
    encoder = StaticEncoder()
    x_train = features(encoder, [e.text for e in train.examples])
    x_held = features(encoder, held.pieces)
    out = np.zeros((len(held.pieces), len(head_names())))
    for column in range(len(head_names())):
        out[:, column] = fit(x_train, train.y[:, column]).predict_proba(x_held)[:, 1]
    return out


def recall_at_benign_share(
    scores: np.ndarray, positives: np.ndarray, benign: np.ndarray, share: float
) -> float:
    """The share of positives scoring above the score that `share` of benign texts reach."""
    if not positives.any() or not benign.any():
        return 0.0
    cut = float(np.quantile(scores[benign], 1.0 - share))
    return float((scores[positives] > cut).mean())


def choose_blend(tuned: Floats, fast: Floats, everything: Split, candidates: list[float]) -> Floats:
    """Per head, the fast stage's weight in the blend (a head not helped keeps 0)."""
    weights = np.zeros(len(head_names()))
    for column in range(len(head_names())):
        rows = everything.applies[:, column]
        positives = everything.y[rows, column]
        benign = everything.benign[rows]
        best = -1.0
        for weight in candidates:
            blended = blend_logits(
                [tuned[rows, column : column + 1], fast[rows, column : column + 1]],
                np.array([[1.0 - weight], [weight]]),
            )[:, 0]
            found = recall_at_benign_share(blended, positives, benign, BLEND_AT_BENIGN_SHARE)
            if found > best + 1e-9:
                best, weights[column] = found, weight
    return weights


def blended(tuned: Floats, fast: Floats, weights: Floats) -> Floats:
    return blend_logits([tuned, fast], np.stack([1.0 - weights, weights])).astype(np.float64)


def run_fold(
    args: argparse.Namespace,
    base: Base,
    cached: dict[str, Tensor],
    examples: list[Example],
    held_indices: np.ndarray,
) -> FoldResult:
    """Train on every fold but one and score the held-out texts: the fine-tuned model after
    each epoch, and the fast stage fitted on the same folds."""
    held_set = set(held_indices.tolist())
    train = Split.of([e for i, e in enumerate(examples) if i not in held_set], windowed=False)
    held = Split.of([examples[i] for i in held_indices], windowed=True)
    held_states = [cached[p] for p in held.pieces]
    tuned = np.zeros((args.epochs, len(held_indices), len(head_names())))

    def score(epoch: int, top: TunedTop) -> bool:
        tuned[epoch - 1] = held.per_text(predict(top, held_states))
        return True

    train_states = [cached[e.text] for e in train.examples]
    _, seconds = fit_top(base, args.top_layers, args.lr, args, train_states, train, score)
    fast = held.per_text(fast_stage_probabilities(train, held))
    return FoldResult(held=held_indices, tuned=tuned, fast=fast, seconds_per_epoch=seconds)


def fold_settings(args: argparse.Namespace, examples: list[Example]) -> dict[str, Any]:
    """What a fold's probabilities depend on: a stored fold is reused only if all of it matches."""
    names = (
        "folds", "top_layers", "lr", "epochs", "head_lr", "batch_size", "max_length",
        "pos_weight_cap", "seed", "bfloat16_training",
    )  # fmt: skip
    return {
        "training_data_sha256_16": data_digest(examples),
        **{name: getattr(args, name) for name in names},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add_training_options(parser)
    parser.add_argument("--out", type=Path, default=models_dir() / TUNED_FILE)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--top-layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=10, help="the schedule's length")
    parser.add_argument("--blend-weights", default="0,0.25,0.5")
    parser.add_argument(
        "--allocation",
        choices=("equal", "maximin"),
        default="maximin",
        help="how the filtering heads share the false-alarm budget (training/budget.py)",
    )
    parser.add_argument("--save-oof", type=Path, default=None, help="write the probabilities")
    parser.add_argument("--ship", action="store_true", help="train on everything and write it")
    parser.add_argument("--report", type=Path, default=None, help="write the report JSON here")
    parser.add_argument(
        "--fold-dir",
        type=Path,
        default=None,
        help="keep finished folds here and reuse those made with the same data and settings",
    )
    parser.add_argument(
        "--max-new-folds",
        type=int,
        default=None,
        help="train at most this many folds not yet in --fold-dir, then stop (go on later)",
    )
    args = parser.parse_args()
    if args.max_new_folds is not None and args.fold_dir is None:
        parser.error("--max-new-folds needs --fold-dir, or the folds it trains are lost")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    examples = load("train", args.data)
    everything = Split.of(examples, windowed=True)
    print(
        f"{len(examples)} texts ({len(everything.pieces)} windows, "
        f"{int(everything.benign.sum())} benign), {args.folds} folds",
        flush=True,
    )
    base = Base(load_sentence_transformer(minilm_path()).model)
    first = base.depth - args.top_layers
    unique = sorted({*everything.pieces, *(e.text for e in examples)}, key=len)
    clock = time.perf_counter()
    states = lower_states(base, unique, args.max_length, [first])[first]
    cached = dict(zip(unique, states, strict=True))
    print(f"lower layers cached in {time.perf_counter() - clock:.0f} s", flush=True)

    tuned_oof = [np.zeros((len(examples), len(head_names()))) for _ in range(args.epochs)]
    fast_oof = np.zeros((len(examples), len(head_names())))
    epoch_seconds: list[float] = []
    settings = fold_settings(args, examples)
    trained = 0
    for number, held_indices in enumerate(folds_of(examples, args.folds, args.seed), 1):
        result = None
        if args.fold_dir is not None:
            try:
                result = load_fold(args.fold_dir, number, settings, held_indices)
            except FoldMismatch as error:
                parser.error(f"{error}; remove it or choose another --fold-dir")
        if result is not None:
            print(f"fold {number}: read from {fold_path(args.fold_dir, number)}", flush=True)
        elif args.max_new_folds is not None and trained >= args.max_new_folds:
            print(f"stopped before fold {number}: --max-new-folds {trained} reached", flush=True)
            return 0
        else:
            clock = time.perf_counter()
            result = run_fold(args, base, cached, examples, held_indices)
            trained += 1
            if args.fold_dir is not None:
                save_fold(args.fold_dir, number, settings, result)
            print(f"fold {number}: {time.perf_counter() - clock:.0f} s", flush=True)
        for epoch in range(args.epochs):
            tuned_oof[epoch][held_indices] = result.tuned[epoch]
        fast_oof[held_indices] = result.fast
        epoch_seconds.append(result.seconds_per_epoch)

    history: list[dict[str, float]] = []
    for epoch, probabilities in enumerate(tuned_oof, 1):
        point = operating_point(probabilities, everything, 1.0, args.max_benign_fpr)
        history.append({"epoch": epoch, "selection_score": round(selection_score(point), 4)})
        print(json.dumps({**history[-1], "recall": point["recall"]}), flush=True)
    best_epoch = int(max(history, key=lambda h: h["selection_score"])["epoch"])
    tuned = tuned_oof[best_epoch - 1]
    candidates = [float(w) for w in args.blend_weights.split(",")]
    weights = choose_blend(tuned, fast_oof, everything, candidates)
    named = {
        f"fine-tuned (epoch {best_epoch})": tuned,
        "fast stage": fast_oof,
        "blend": blended(tuned, fast_oof, weights),
    }
    report: dict[str, Any] = {
        "epochs": history,
        "best_epoch": best_epoch,
        "blend_fast_weights": dict(zip(head_names(), weights.round(2).tolist(), strict=True)),
    }
    for rule, target in (("max_recall", 1.0), ("train_py_rule", args.target_recall)):
        points = {
            name: operating_point(p, everything, target, args.max_benign_fpr)
            for name, p in named.items()
        }
        report[rule] = points
        print(f"\nout of fold, thresholds by {rule} (target recall {target}):\n{table(points)}")
    choose = {"equal": choose_thresholds, "maximin": maximin_thresholds}
    points = {
        allocation: figures(
            named["blend"],
            everything,
            chooser(
                named["blend"],
                everything.y,
                everything.benign,
                everything.applies,
                args.target_recall,
                args.max_benign_fpr,
            ),
        )
        for allocation, chooser in choose.items()
    }
    report["allocations"] = points
    print(f"\nthe blend, out of fold, by budget allocation:\n{table(points)}")
    print("blend weights of the fast stage:", json.dumps(report["blend_fast_weights"]))
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=1))
    if args.save_oof is not None:
        np.savez_compressed(
            args.save_oof,
            tuned=tuned,
            fast=fast_oof,
            y=everything.y,
            benign=everything.benign,
            applies=everything.applies,
        )
    if args.ship:
        thresholds = np.array(
            [points[args.allocation]["thresholds"][h] for h in head_names()], dtype=np.float32
        )
        ship(args, base, cached, examples, best_epoch, weights, thresholds, report)
        print(f"trained on all {len(examples)} texts, {np.mean(epoch_seconds):.0f} s an epoch")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def ship(
    args: argparse.Namespace,
    base: Base,
    cached: dict[str, Tensor],
    examples: list[Example],
    epochs: int,
    blend_weights: Floats,
    thresholds: np.ndarray,
    report: dict[str, Any],
) -> None:
    from safetensors.torch import save_file

    train = Split.of(examples, windowed=False)
    top, seconds = fit_top(
        base,
        args.top_layers,
        args.lr,
        args,
        [cached[e.text] for e in examples],
        train,
        lambda epoch, _top: epoch < epochs,
    )
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in top.state_dict().items()}
    save_file(state, str(args.out))
    heads = head_names()
    metadata = {
        "heads": heads,
        "top_layers": args.top_layers,
        "max_length": args.max_length,
        "dtype": "float16",
        "thresholds": {h: round(float(t), 4) for h, t in zip(heads, thresholds, strict=True)},
        "blend": {"fast": {h: float(w) for h, w in zip(heads, blend_weights, strict=True)}},
        "threshold_rule": (
            f"{args.allocation} allocation (training/budget.py) on {args.folds}-fold "
            f"out-of-fold probabilities of the blend, target recall {args.target_recall}, at most "
            f"{args.max_benign_fpr:.1%} of benign training texts filtered by the default "
            f"policy's heads"
        ),
        "training": {
            "trained_on": len(examples),
            "training_data_sha256_16": data_digest(examples),
            "folds": args.folds,
            "seed": args.seed,
            "lr": args.lr,
            "head_lr": args.head_lr,
            "epochs": epochs,
            "schedule_epochs": args.epochs,
            "batch_size": args.batch_size,
            "pos_weight_cap": args.pos_weight_cap,
            "bfloat16_training": args.bfloat16_training,
            "seconds_per_epoch": round(seconds, 1),
        },
        "out_of_fold": report,
    }
    metadata_path(args.out).write_text(json.dumps(metadata, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)", flush=True)
    classifier = TunedClassifier(args.out)
    print(f"latency, one short text: median {latency(classifier):.1f} ms", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
