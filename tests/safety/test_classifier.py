"""The shipped content classifier, loaded and run as the server runs it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from ceruleum.safety.categories import CATEGORIES, Severity
from ceruleum.safety.classifier import ClassifierWeights, ContentClassifier, head_names
from ceruleum.safety.features import SHORT_WINDOW, lexical_features, windows
from ceruleum.safety.service import ClassifierLoader

VIOLENT = "I am going to stab my neighbour tonight and make him bleed until he dies."


@pytest.fixture(scope="module")
def classifier() -> ContentClassifier:
    loader = ClassifierLoader()
    loader.start()
    return loader.get()


def test_the_shipped_weights_match_this_version(tmp_path: Path) -> None:
    weights = ClassifierWeights.load()
    assert weights.heads == head_names()
    for stage in weights.stages.values():
        assert np.all((stage.thresholds > 0) & (stage.thresholds < 1))
    assert 0 < weights.escalate_at < 1
    copy = tmp_path / "copy.npz"
    weights.save(copy)
    again = ClassifierWeights.load(copy)
    assert again.escalate_at == weights.escalate_at
    for name, stage in weights.stages.items():
        np.testing.assert_array_equal(again.stages[name].dense, stage.dense)
        np.testing.assert_allclose(
            again.stages[name].lexical.toarray(), stage.lexical.toarray(), rtol=1e-3, atol=1e-4
        )


def test_ordinary_text_is_safe(classifier: ContentClassifier) -> None:
    [scores] = classifier.classify(["What is the capital of Australia?"])
    assert all(scores.severities[c] == Severity.SAFE for c in CATEGORIES)
    assert not any(scores.detected.values())


def test_a_threat_is_violent(classifier: ContentClassifier) -> None:
    [scores] = classifier.classify([VIOLENT])
    assert scores.stage == "full"
    assert scores.severities["violence"] >= Severity.MEDIUM


def test_a_long_text_scores_as_its_worst_window(classifier: ContentClassifier) -> None:
    filler = "The museum opens at nine and the cafe serves soup and bread. " * 30
    assert len(windows(filler + VIOLENT)) > 1
    assert len(filler.split()) > SHORT_WINDOW[0]
    [scores] = classifier.classify([filler + VIOLENT])
    assert scores.severities["violence"] >= Severity.MEDIUM
    [calm] = classifier.classify([filler])
    assert calm.severities["violence"] < Severity.MEDIUM


def test_windows_cover_every_word() -> None:
    assert windows("a short text") == ["a short text"]
    words = [f"w{i}" for i in range(100)]
    cut = windows(" ".join(words))
    assert cut[0] == " ".join(words)  # one long window (100 <= 128 words)
    short = cut[1:]
    assert all(len(w.split()) <= SHORT_WINDOW[0] for w in short)
    assert {w for window in short for w in window.split()} == set(words)


def test_threads_may_classify_at_once(classifier: ContentClassifier) -> None:
    """The server classifies on a thread pool; the encoders' tokenizers must not be entered by
    two threads at once (they fail with "Already borrowed")."""
    texts = [f"Request number {i}: summarise the meeting notes for team {i}." for i in range(8)]
    alone = [classifier.classify([text])[0].severities for text in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            together = list(pool.map(lambda text: classifier.classify([text])[0].severities, texts))
            assert together == alone
        # The full stage (the shared MiniLM) from several threads at once.
        threats = list(pool.map(lambda _: classifier.classify([VIOLENT])[0], range(4)))
    assert all(t.stage == "full" and t.severities["violence"] >= Severity.MEDIUM for t in threats)


def test_the_n_gram_weights_share_the_features_type() -> None:
    """A product of float32 weights with float64 features makes scipy copy every weight on
    each call: 2 ms a text in the fast stage, which reads every prompt and completion."""
    features = lexical_features(["What is the capital of Australia?"])
    for stage in ClassifierWeights.load().stages.values():
        assert stage.lexical.dtype == features.dtype
