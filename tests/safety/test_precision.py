"""The classifier's MiniLM precision: "auto" follows the CPU, a setting overrides it, an unknown
one stops the server, and int8 is a quantized copy of its own that leaves the embeddings
endpoint's float32 model alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ceruleum.engine.sentence_models import load_sentence_transformer
from ceruleum.safety import precision
from ceruleum.safety.encoder import TransformerEncoder, minilm_path
from ceruleum.settings import InvalidSettingsError, load_settings


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_cpu(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(precision, "bfloat16_is_fast", lambda: native)
    expected = "bfloat16" if native else precision.WITHOUT_NATIVE_BFLOAT16
    assert precision.classifier_precision("auto") == expected
    assert precision.classifier_precision("float32") == "float32"
    assert precision.classifier_precision("int8") == "int8"


def test_the_setting_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERULEUM_CONTENT_FILTER_PRECISION", "int8")
    assert load_settings().content_filter_precision == "int8"
    monkeypatch.setenv("CERULEUM_CONTENT_FILTER_PRECISION", "int4")
    with pytest.raises(InvalidSettingsError, match="CERULEUM_CONTENT_FILTER_PRECISION"):
        load_settings()


def linear_layers(model: torch.nn.Module) -> int:
    return sum(type(m) is torch.nn.Linear for m in model.modules())


def test_int8_is_a_quantized_copy_that_reads_like_float32() -> None:
    quantized = load_sentence_transformer(minilm_path(), "int8").model
    full = load_sentence_transformer(minilm_path(), "float32").model
    assert linear_layers(quantized) == 0
    assert linear_layers(full) >= 36  # six layers of six each: the shared model is untouched
    texts = ["How do I kill a stuck Linux process?", "I will hurt you tonight", "Hi there"]
    ours = TransformerEncoder("int8").embed(texts)
    reference = TransformerEncoder("float32").embed(texts)
    cosines = (ours * reference).sum(axis=1)  # both are normalised
    # Close, not equal: int8 costs MiniLM some accuracy (0.92-0.98 on such texts). Whether the
    # classifier keeps its recall is read on `dev` (docs/safety.md, "Precision").
    assert np.all(cosines > 0.9), cosines
    assert np.all(cosines < 0.9999), cosines
