"""Fine-tune MiniLM's top layers as a content classifier.

python -m ceruleum.safety.training.finetune [--ship]

1. Load data/safety/train/*.jsonl (never the eval split) and hold out a stratified validation
   share of it (fixed seed). Every choice below is made on that validation split.
2. Run the frozen lower MiniLM layers once over every text (the training texts whole, the
   validation texts window by window, as served) and keep their hidden states.
3. For each number of top layers and learning rate tried, train copies of the top layers and a
   linear layer over their token mean (one output per head) with a masked, class-weighted binary
   cross-entropy: a detector is trained and judged only on the role it reads (`applies_to`).
   Every epoch is scored on validation; a run keeps its best epoch.
4. For comparison, the current classifier's full stage (train.py's logistic heads over MiniLM
   embeddings and n-grams) trained on the same training share and scored on the same windows.
5. Both are judged at the same operating point: the default policy's heads ("≥ medium" and
   jailbreak) get thresholds with which at most --max-benign-fpr of the benign validation texts
   are filtered by any of them (train.py's `choose_thresholds`), and the table gives each
   category's recall of its medium + high items there.
6. With --ship, and only if the fine-tuned model does better, write its top layers and head
   (models/minilm-tuned-top.safetensors) and a JSON of settings, validation thresholds and
   figures, then check the shipped file through `TunedClassifier` and time one short text.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ceruleum.engine.sentence_models import load_sentence_transformer
from ceruleum.safety.classifier import head_names, models_dir
from ceruleum.safety.encoder import TransformerEncoder, minilm_path
from ceruleum.safety.training.dataset import load
from ceruleum.safety.training.top_layers import (
    add_training_options,
    fit_top,
    latency,
    lower_states,
    predict,
)
from ceruleum.safety.training.train import data_digest, features, fit
from ceruleum.safety.training.validation import (
    Floats,
    Split,
    figures,
    operating_point,
    selection_score,
    split_examples,
    table,
)
from ceruleum.safety.tuned import TUNED_FILE, Base, TunedClassifier, TunedTop, metadata_path


@dataclass(slots=True)
class Run:
    top_layers: int
    lr: float
    history: list[dict[str, Any]]
    best_epoch: int
    best_score: float
    best_state: dict[str, Tensor]
    best_probabilities: Floats  # validation, per text
    seconds_per_epoch: float


def train_run(
    base: Base,
    top_layers: int,
    lr: float,
    args: argparse.Namespace,
    train_states: list[Tensor],
    train: Split,
    valid_states: list[Tensor],
    valid: Split,
) -> Run:
    """One K and learning rate, every epoch scored on validation; keeps the best epoch."""
    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, Tensor], Floats] | None = None

    def score_epoch(epoch: int, top: TunedTop) -> bool:
        nonlocal best
        probabilities = valid.per_text(predict(top, valid_states))
        point = operating_point(probabilities, valid, 1.0, args.max_benign_fpr)
        score = selection_score(point)
        record = {
            "epoch": epoch,
            "selection_score": round(score, 4),
            "recall": point["recall"],
            "benign_fpr": point["benign_fpr"],
        }
        history.append(record)
        print(f"K={top_layers} lr={lr:g}", json.dumps(record), flush=True)
        if best is None or score > best[0]:
            state = {k: v.detach().clone() for k, v in top.state_dict().items()}
            best = (score, epoch, state, probabilities)
        return True

    _, seconds = fit_top(base, top_layers, lr, args, train_states, train, score_epoch)
    assert best is not None
    return Run(
        top_layers=top_layers,
        lr=lr,
        history=history,
        best_epoch=best[1],
        best_score=best[0],
        best_state=best[2],
        best_probabilities=best[3],
        seconds_per_epoch=seconds,
    )


def logistic_baseline(train: Split, valid: Split) -> Floats:
    """The current full stage (train.py's features and heads) fitted on the training share;
    validation probabilities per text (worst window)."""
    encoder = TransformerEncoder()
    x_train = features(encoder, [e.text for e in train.examples])
    x_valid = features(encoder, valid.pieces)
    probabilities = np.zeros((len(valid.pieces), len(head_names())))
    for column in range(len(head_names())):
        model = fit(x_train, train.y[:, column])
        probabilities[:, column] = model.predict_proba(x_valid)[:, 1]
    return valid.per_text(probabilities)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add_training_options(parser)
    parser.add_argument("--out", type=Path, default=models_dir() / TUNED_FILE)
    parser.add_argument("--top-layers", default="2,3", help="comma-separated K to try")
    parser.add_argument("--lrs", default="3e-5,1e-4", help="comma-separated layer learning rates")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--valid-share", type=float, default=0.2)
    parser.add_argument("--limit", type=int, default=0, help="use only this many texts (smoke)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--float32", action="store_true", help="ship float32 weights")
    parser.add_argument("--ship", action="store_true", help="write the weights if better")
    parser.add_argument("--report", type=Path, default=None, help="write the report JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    examples = load("train", args.data)
    if args.limit:
        examples = random.Random(args.seed).sample(examples, args.limit)
    train_examples, valid_examples = split_examples(examples, args.valid_share, args.seed)
    train = Split.of(train_examples, windowed=False)
    valid = Split.of(valid_examples, windowed=True)
    print(
        f"{len(train.examples)} training texts, {len(valid.examples)} validation texts "
        f"({len(valid.pieces)} windows, {int(valid.benign.sum())} benign)",
        flush=True,
    )

    base = Base(load_sentence_transformer(minilm_path()).model)
    counts = [int(k) for k in args.top_layers.split(",")]
    keep = sorted({base.depth - k for k in counts})
    lengths = [len(base.tokenizer(e.text)["input_ids"]) for e in examples]
    print(
        f"word pieces per text: median {int(np.median(lengths))}, max {max(lengths)}; "
        f"over {args.max_length}: {sum(n > args.max_length for n in lengths)}",
        flush=True,
    )
    clock = time.perf_counter()
    train_cache = lower_states(base, train.pieces, args.max_length, keep)
    valid_cache = lower_states(base, valid.pieces, args.max_length, keep)
    cache_seconds = time.perf_counter() - clock
    print(f"lower layers cached in {cache_seconds:.0f} s", flush=True)

    points: dict[str, dict[str, Any]] = {}
    baseline_probabilities: Floats | None = None
    if not args.no_baseline:
        clock = time.perf_counter()
        baseline_probabilities = logistic_baseline(train, valid)
        print(f"logistic baseline in {time.perf_counter() - clock:.0f} s", flush=True)

    runs: list[Run] = []
    for count in counts:
        for lr in (float(v) for v in args.lrs.split(",")):
            runs.append(
                train_run(
                    base,
                    count,
                    lr,
                    args,
                    train_cache[base.depth - count],
                    train,
                    valid_cache[base.depth - count],
                    valid,
                )
            )
    best = max(runs, key=lambda r: r.best_score)
    tried = [
        {
            "top_layers": r.top_layers,
            "lr": r.lr,
            "best_epoch": r.best_epoch,
            "selection_score": round(r.best_score, 4),
            "seconds_per_epoch": round(r.seconds_per_epoch, 1),
        }
        for r in runs
    ]
    for entry in tried:
        print("tried", json.dumps(entry), flush=True)

    named = {f"fine-tuned (K={best.top_layers})": best.best_probabilities}
    if baseline_probabilities is not None:
        named["logistic full stage"] = baseline_probabilities
        # Their mean: the fine-tuned model reads violence and self-harm better, the n-grams
        # of the logistic heads jailbreaks and hidden instructions.
        named["mean of the two"] = (best.best_probabilities + baseline_probabilities) / 2
    report: dict[str, Any] = {"tried": tried, "cache_seconds": round(cache_seconds, 1)}
    for rule, target in (("max_recall", 1.0), ("train_py_rule", args.target_recall)):
        points = {
            name: operating_point(p, valid, target, args.max_benign_fpr)
            for name, p in named.items()
        }
        report[rule] = points
        print(f"\nvalidation, thresholds by {rule} (target recall {target}):\n{table(points)}")

    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=1))
    fine_score = selection_score(report["max_recall"][next(iter(named))])
    better = baseline_probabilities is None or fine_score > selection_score(
        report["max_recall"]["logistic full stage"]
    )
    if args.ship and better:
        ship(args, best, valid, report, data_digest(examples), len(train.examples))
    elif args.ship:
        print("the fine-tuned model is not better on validation: nothing written")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def ship(
    args: argparse.Namespace,
    best: Run,
    valid: Split,
    report: dict[str, Any],
    digest: str,
    trained_on: int,
) -> None:
    from safetensors.torch import save_file

    dtype = torch.float32 if args.float32 else torch.float16
    save_file({k: v.to(dtype).contiguous() for k, v in best.best_state.items()}, str(args.out))
    point = operating_point(best.best_probabilities, valid, args.target_recall, args.max_benign_fpr)
    metadata = {
        "heads": head_names(),
        "top_layers": best.top_layers,
        "max_length": args.max_length,
        "dtype": str(dtype).removeprefix("torch."),
        "thresholds": point["thresholds"],
        "threshold_rule": (
            f"train.py's choose_thresholds on the validation split (worst window per text), "
            f"target recall {args.target_recall}, at most {args.max_benign_fpr:.1%} of benign "
            f"validation texts filtered by the default policy's heads"
        ),
        "training": {
            "trained_on": trained_on,
            "training_data_sha256_16": digest,
            "validation_share": args.valid_share,
            "seed": args.seed,
            "lr": best.lr,
            "head_lr": args.head_lr,
            "epochs": best.best_epoch,
            "schedule_epochs": args.epochs,
            "batch_size": args.batch_size,
            "pos_weight_cap": args.pos_weight_cap,
            "bfloat16_training": args.bfloat16_training,
            "seconds_per_epoch": round(best.seconds_per_epoch, 1),
        },
        "validation": report,
    }
    metadata_path(args.out).write_text(json.dumps(metadata, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)", flush=True)

    # The shipped file, read back as served, on the validation texts.
    classifier = TunedClassifier(args.out)
    served = valid.per_text(classifier.window_probabilities(valid.pieces))
    drift = float(np.abs(served - best.best_probabilities).max())
    thresholds = classifier.thresholds
    flips = int(((served >= thresholds) != (best.best_probabilities >= thresholds)).sum())
    again = figures(served, valid, thresholds)
    print(
        f"as served ({metadata['dtype']}): largest probability change {drift:.2e}, "
        f"decisions changed {flips}; recall {again['recall']}, benign {again['benign_fpr']:.1%}",
        flush=True,
    )
    print(f"latency, one short text: median {latency(classifier):.1f} ms", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
