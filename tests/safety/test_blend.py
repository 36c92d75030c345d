"""The blended full stage: per head, a weighted mean of the two stages' logits (`blend_logits`),
judged by the full stage's thresholds; the cascade blends the fast stage's reading it already
has instead of reading again, and the served cascade blends as the shipped model's metadata
says."""

from __future__ import annotations

import numpy as np
import pytest

from ceruleum.safety.classifier import (
    Array,
    ContentClassifier,
    blend_logits,
    head_names,
)

HEADS = len(head_names())


class FixedReader:
    """A reader that gives every piece the same probabilities and counts the pieces it read."""

    def __init__(self, probability: float, threshold: float = 0.5) -> None:
        self.row = np.full(HEADS, probability, dtype=np.float32)
        self._thresholds = np.full(HEADS, threshold, dtype=np.float32)
        self.pieces_read = 0

    @property
    def thresholds(self) -> Array:
        return self._thresholds

    def window_probabilities(self, pieces: list[str]) -> Array:
        self.pieces_read += len(pieces)
        return np.tile(self.row, (len(pieces), 1))


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_blend_is_the_weighted_mean_of_logits() -> None:
    weights = np.array([[0.75] * HEADS, [0.25] * HEADS])
    got = blend_logits([np.full((2, HEADS), 0.9), np.full((2, HEADS), 0.2)], weights)
    expected = 1 / (1 + np.exp(-(0.75 * logit(0.9) + 0.25 * logit(0.2))))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_weights_are_per_head_and_certainty_stays_finite() -> None:
    weights = np.zeros((2, HEADS))
    weights[0, :] = 1.0
    weights[:, 3] = [0.5, 0.5]
    got = blend_logits([np.ones((1, HEADS)), np.zeros((1, HEADS))], weights)
    assert np.isfinite(got).all()
    assert got[0, 0] > 0.999
    assert got[0, 3] == pytest.approx(0.5, abs=1e-6)


def test_the_cascade_blends_per_head_with_the_full_stages_thresholds_and_reads_once() -> None:
    fast, full = FixedReader(0.3), FixedReader(0.8, threshold=0.42)
    share = np.zeros(HEADS, dtype=np.float32)
    share[0] = 0.5
    classifier = ContentClassifier({"fast": fast, "full": full}, escalate_at=0.2, fast_share=share)
    [scores] = classifier.classify(["a threatening text"])
    probabilities = list(scores.probabilities.values())
    assert scores.stage == "full"
    assert probabilities[0] == pytest.approx(1 / (1 + np.exp(-0.5 * (logit(0.8) + logit(0.3)))))
    assert probabilities[1] == pytest.approx(0.8)  # share 0: the full stage alone
    # The fast stage's reading is reused for the blend, not read again.
    assert fast.pieces_read == 1 and full.pieces_read == 1


def test_without_a_share_the_full_stage_decides_alone() -> None:
    fast, full = FixedReader(0.3), FixedReader(0.8)
    classifier = ContentClassifier({"fast": fast, "full": full}, escalate_at=0.2)
    [scores] = classifier.classify(["text"])
    assert list(scores.probabilities.values()) == pytest.approx([0.8] * HEADS)
    assert not classifier.fast_share.any()


def test_the_share_needs_one_weight_per_head() -> None:
    with pytest.raises(ValueError, match="one weight per head"):
        ContentClassifier(
            {"fast": FixedReader(0.5), "full": FixedReader(0.5)},
            escalate_at=0.5,
            fast_share=np.ones(HEADS + 1, dtype=np.float32),
        )


def test_the_served_cascade_blends_as_the_shipped_metadata_says() -> None:
    from ceruleum.safety.service import load_classifier
    from ceruleum.safety.tuned import TunedClassifier, tuned_model_shipped

    if not tuned_model_shipped():
        pytest.skip("no fine-tuned model is shipped in this checkout")
    tuned = TunedClassifier()
    classifier = load_classifier()
    assert isinstance(classifier.scorer("full"), TunedClassifier)
    np.testing.assert_allclose(classifier.fast_share, tuned.fast_stage_share())
    assert classifier.fast_share.any()
