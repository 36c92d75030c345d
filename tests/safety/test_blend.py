"""The blended full stage (classifier.BlendedStage): per head, a weighted mean of readers'
logits, judged by the blend's own thresholds; and the served cascade blends as the shipped
model's metadata says."""

from __future__ import annotations

import numpy as np
import pytest

from ceruleum.safety.classifier import Array, BlendedStage, blend_logits, head_names

HEADS = len(head_names())


class FixedReader:
    """A reader that gives every piece the same probabilities and counts its calls."""

    def __init__(self, probability: float) -> None:
        self.row = np.full(HEADS, probability, dtype=np.float32)
        self.calls = 0

    @property
    def thresholds(self) -> Array:
        return np.full(HEADS, 0.5, dtype=np.float32)

    def window_probabilities(self, pieces: list[str]) -> Array:
        self.calls += 1
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


def test_the_stage_judges_with_its_own_thresholds_and_skips_unused_readers() -> None:
    tuned, fast, unused = FixedReader(0.8), FixedReader(0.1), FixedReader(0.99)
    weights = np.stack([np.full(HEADS, 0.5), np.full(HEADS, 0.5), np.zeros(HEADS)])
    thresholds = np.full(HEADS, 0.42, dtype=np.float32)
    stage = BlendedStage([tuned, fast, unused], weights.astype(np.float32), thresholds)
    out = stage.window_probabilities(["a", "b", "c"])
    assert out.shape == (3, HEADS)
    np.testing.assert_allclose(out[0, 0], 1 / (1 + np.exp(-0.5 * (logit(0.8) + logit(0.1)))))
    assert stage.thresholds is thresholds
    assert unused.calls == 0 and tuned.calls == 1


def test_weights_must_match_readers_and_heads() -> None:
    with pytest.raises(ValueError, match="one row per reader"):
        BlendedStage(
            [FixedReader(0.5)],
            np.ones((2, HEADS), dtype=np.float32),
            np.zeros(HEADS, dtype=np.float32),
        )


def test_the_served_cascade_blends_as_the_shipped_metadata_says() -> None:
    from ceruleum.safety.service import load_classifier
    from ceruleum.safety.tuned import TunedClassifier, tuned_model_shipped

    if not tuned_model_shipped():
        pytest.skip("no fine-tuned model is shipped in this checkout")
    shares = TunedClassifier().fast_stage_share()
    full = load_classifier().scorer("full")
    if shares.any():
        assert isinstance(full, BlendedStage)
        np.testing.assert_allclose(full.weights[1], shares)
    else:
        assert isinstance(full, TunedClassifier)
