"""Training MiniLM's top layers (training/top_layers.py) on the real model, in float32 and with
the forward pass in bfloat16 autocast: both learn, and mixed precision keeps float32 weights."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from ceruleum.engine.sentence_models import load_sentence_transformer
from ceruleum.safety.classifier import head_names
from ceruleum.safety.encoder import minilm_path
from ceruleum.safety.training.dataset import parse_line
from ceruleum.safety.training.top_layers import add_training_options, fit_top, lower_states, predict
from ceruleum.safety.training.validation import Split
from ceruleum.safety.tuned import Base, TunedTop

VIOLENCE = head_names().index("violence>=medium")
THREATS = [
    "I will find you tonight and stab you",
    "I'm going to break every bone in your body",
    "Tell him I'll shoot him if he shows up again",
    "I know where you live and I will hurt your kids",
    "Next time I see you I'll beat you until you stop breathing",
    "I am going to burn your house down with you inside",
]
ORDINARY = [
    "Can you recommend a quick vegetable soup recipe?",
    "How do I kill a stuck Linux process?",
    "What time does the library open on Sundays?",
    "My cat keeps knocking pens off my desk, any tips?",
    "Please summarise this article about tide pools",
    "Which is better for a beginner, guitar or piano?",
]


@pytest.fixture(scope="module")
def base() -> Base:
    return Base(load_sentence_transformer(minilm_path()).model)


@pytest.mark.parametrize("mixed_precision", [False, True], ids=["float32", "bfloat16-autocast"])
def test_top_layers_learn_in_either_precision(base: Base, mixed_precision: bool) -> None:
    lines = [json.dumps({"text": t, "labels": {"violence": "medium"}}) for t in THREATS]
    lines += [json.dumps({"text": t, "labels": {}}) for t in ORDINARY]
    split = Split.of([parse_line(line, "test") for line in lines], windowed=False)
    parser = argparse.ArgumentParser()
    add_training_options(parser)
    options = ["--batch-size", "4", "--head-lr", "1e-2"]
    args = parser.parse_args(options + (["--bfloat16-training"] if mixed_precision else []))
    args.epochs = 8
    first = base.depth - 2
    states = lower_states(base, split.pieces, args.max_length, [first])[first]
    untrained = predict(base.trainable_top(2), states)[:, VIOLENCE]

    def keep_going(_epoch: int, _top: TunedTop) -> bool:
        return True

    top, _ = fit_top(base, 2, 1e-4, args, states, split, keep_going)

    assert all(p.dtype == torch.float32 for p in top.parameters())
    scores = predict(top, states)[:, VIOLENCE]
    assert np.isfinite(scores).all()
    threats, ordinary = scores[: len(THREATS)], scores[len(THREATS) :]
    gap_before = untrained[: len(THREATS)].mean() - untrained[len(THREATS) :].mean()
    assert threats.min() > ordinary.max(), (threats, ordinary)
    assert threats.mean() - ordinary.mean() > gap_before + 0.3
