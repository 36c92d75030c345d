"""Cross-fitting's choices (training/crossfit.py): folds keep every label combination in each
fold, and the blend gives the fast stage weight only where it helps a head."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from ceruleum.safety.classifier import head_names
from ceruleum.safety.training.crossfit import choose_blend, folds_of
from ceruleum.safety.training.dataset import Example, parse_line
from ceruleum.safety.training.top_layers import add_training_options
from ceruleum.safety.training.validation import Split

JAILBREAK = head_names().index("jailbreak")
VIOLENCE = head_names().index("violence>=medium")


def examples(benign: int, attacks: int, threats: int) -> list[Example]:
    lines = [json.dumps({"text": f"ordinary text {i}", "labels": {}}) for i in range(benign)]
    lines += [
        json.dumps({"text": f"attack {i}", "labels": {"jailbreak": True}}) for i in range(attacks)
    ]
    lines += [
        json.dumps({"text": f"threat {i}", "labels": {"violence": "medium"}})
        for i in range(threats)
    ]
    return [parse_line(line, "test") for line in lines]


def test_folds_cover_every_text_once_and_stratify() -> None:
    data = examples(100, 20, 20)
    folds = folds_of(data, 5, seed=1)
    held = np.concatenate(folds)
    assert sorted(held.tolist()) == list(range(len(data)))
    for fold in folds:
        assert sum(data[i].detected["jailbreak"] for i in fold) == 4


def test_the_fast_stage_gets_weight_only_where_it_helps() -> None:
    data = examples(400, 50, 50)
    split = Split.of(data, windowed=True)
    rng = np.random.default_rng(0)
    tuned = rng.uniform(0.0, 0.6, size=(len(data), len(head_names())))
    fast = rng.uniform(0.0, 0.6, size=(len(data), len(head_names())))
    jailbreaks = split.y[:, JAILBREAK]
    threats = split.y[:, VIOLENCE]
    # The tuned model half-misses jailbreaks the fast stage's n-grams see clearly; on violence
    # the tuned model is right and the fast stage is noise.
    tuned[jailbreaks, JAILBREAK] = rng.uniform(0.3, 0.9, size=int(jailbreaks.sum()))
    fast[jailbreaks, JAILBREAK] = 0.95
    tuned[threats, VIOLENCE] = 0.95
    weights = choose_blend(tuned, fast, split, [0.0, 0.25, 0.5])
    assert weights[JAILBREAK] > 0
    assert weights[VIOLENCE] == 0


def test_budget_and_recall_options_refuse_values_that_are_not_shares() -> None:
    parser = argparse.ArgumentParser()
    add_training_options(parser)
    assert parser.parse_args(["--max-benign-fpr", "0.02"]).max_benign_fpr == 0.02
    assert parser.parse_args([]).max_benign_fpr == 0.025
    for bad in ("3", "0", "-0.1", "abc"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--max-benign-fpr", bad])
    with pytest.raises(SystemExit):
        parser.parse_args(["--target-recall", "92"])
