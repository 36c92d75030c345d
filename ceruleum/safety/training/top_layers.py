"""Training copies of MiniLM's top layers over cached lower-layer states: the mechanics and the
options that `finetune` (one validation split) and `crossfit` (out-of-fold) share."""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from ceruleum.safety.classifier import head_names
from ceruleum.safety.training.dataset import DATA_DIR
from ceruleum.safety.training.validation import Bools, Floats, Split
from ceruleum.safety.tuned import Base, TunedClassifier, TunedTop

SEED = 20261129
SHORT_TEXT = "Can you recommend a good recipe for a quick vegetable soup I can make tonight?"


# --- the frozen lower layers, once -----------------------------------------------------------


def lower_states(
    base: Base, texts: Sequence[str], max_length: int, keep: Sequence[int]
) -> dict[int, list[Tensor]]:
    """Per text, the hidden states (tokens, dims) after each of the `keep` lower layers."""
    out: dict[int, list[Tensor]] = {n: [torch.empty(0)] * len(texts) for n in keep}
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), 64):
        chosen = order[start : start + 64]
        ids, types, mask = base.tokenize([texts[i] for i in chosen], max_length)
        states = base.hidden_states(ids, types, mask, max(keep))
        lengths = mask.sum(dim=1).tolist()
        for row, index in enumerate(chosen):
            for n in keep:
                out[n][index] = states[n][row, : lengths[row]].clone()
    return out


def collate(states: list[Tensor], chosen: Sequence[int]) -> tuple[Tensor, Tensor]:
    seqs = [states[i] for i in chosen]
    lengths = torch.tensor([len(s) for s in seqs])
    hidden = pad_sequence(seqs, batch_first=True)
    mask = torch.arange(hidden.shape[1])[None, :] < lengths[:, None]
    return hidden, mask


def batches(lengths: Sequence[int], size: int, rng: random.Random) -> list[list[int]]:
    """Random batches of similar lengths (little padding): shuffle, sort within chunks."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    out: list[list[int]] = []
    chunk = size * 20
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        out += [part[i : i + size] for i in range(0, len(part), size)]
    rng.shuffle(out)
    return out


def predict(top: TunedTop, states: list[Tensor]) -> Floats:
    top.eval()
    out = np.zeros((len(states), len(head_names())))
    order = sorted(range(len(states)), key=lambda i: len(states[i]))
    with torch.no_grad():
        for start in range(0, len(order), 128):
            chosen = order[start : start + 128]
            out[chosen] = torch.sigmoid(top(*collate(states, chosen))).double().numpy()
    return out


def positive_weights(y: Bools, applies: Bools, cap: float) -> Tensor:
    """Per head, negatives over positives among the texts it reads (class balance), capped."""
    positives = (y & applies).sum(axis=0)
    negatives = (~y & applies).sum(axis=0)
    return torch.tensor(
        np.clip(negatives / np.maximum(positives, 1), 1.0, cap), dtype=torch.float32
    )


def fit_top(
    base: Base,
    top_layers: int,
    lr: float,
    args: argparse.Namespace,
    train_states: list[Tensor],
    train: Split,
    after_epoch: Callable[[int, TunedTop], bool],
) -> tuple[TunedTop, float]:
    """Train copies of the top layers and the heads on `train`; `after_epoch(epoch, top)` is
    called after each epoch and stops the run by returning False. The schedule always spans
    `args.epochs`, so a run stopped at epoch e is the same model at any stopping point.
    Returns the model and the mean seconds per epoch."""
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    top = base.trainable_top(top_layers)
    head_params = list(top.head.parameters())
    layer_params = list(top.layers.parameters())
    optimizer = torch.optim.AdamW(
        [{"params": layer_params, "lr": lr}, {"params": head_params, "lr": args.head_lr}],
        weight_decay=0.01,
    )
    steps_per_epoch = (len(train_states) + args.batch_size - 1) // args.batch_size
    total = steps_per_epoch * args.epochs
    warmup = max(1, int(0.06 * total))

    def schedule(step: int) -> float:
        return float(min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    pos_weight = positive_weights(train.y, train.applies, args.pos_weight_cap)
    targets = torch.tensor(train.y, dtype=torch.float32)
    loss_mask = torch.tensor(train.applies, dtype=torch.float32)
    lengths = [len(s) for s in train_states]
    epoch_seconds: list[float] = []
    for epoch in range(1, args.epochs + 1):
        top.train()
        started = time.perf_counter()
        for chosen in batches(lengths, args.batch_size, rng):
            hidden, mask = collate(train_states, chosen)
            # Mixed precision: weights, gradients and the optimizer stay float32.
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bfloat16_training):
                logits = top(hidden, mask)
            losses = F.binary_cross_entropy_with_logits(
                logits.float(), targets[chosen], pos_weight=pos_weight, reduction="none"
            )
            weights = loss_mask[chosen]
            loss = (losses * weights).sum() / weights.sum().clamp(min=1.0)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(top.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
        epoch_seconds.append(time.perf_counter() - started)
        if not after_epoch(epoch, top):
            break
    return top, float(np.mean(epoch_seconds))


def latency(classifier: TunedClassifier, calls: int = 50) -> float:
    classifier.probabilities([SHORT_TEXT])  # warm up
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        classifier.probabilities([SHORT_TEXT])
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def share(text: str) -> float:
    """An argparse type for a fraction strictly between 0 and 1 (a recall, a share of texts)."""
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1 (e.g. 0.025)")
    return value


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options both training scripts read the same way."""
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--pos-weight-cap", type=float, default=20.0)
    parser.add_argument("--target-recall", type=share, default=0.92)
    # Issue 5 allows 3% of benign text filtered. Thresholds chosen at exactly 3% of the benign
    # training texts exceed it on about half of other samples of a few hundred texts (one text
    # is 0.4 points there), so the budget keeps half a point in reserve.
    parser.add_argument("--max-benign-fpr", type=share, default=0.025)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--bfloat16-training",
        action="store_true",
        help="run the forward pass in bfloat16 autocast (weights and optimizer stay float32): "
        "epochs 1.33x as fast on AMX CPUs, at a slightly lower score (docs/safety.md)",
    )
