"""Linear layers packed once for inference (engine/packed_linear.py) against PyTorch's own, on
the real oneDNN ops; the real path (the shipped classifier) is in tests/safety/test_tuned.py."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from ceruleum.engine import packed_linear
from ceruleum.engine.packed_linear import PackedLinear, pack_linear_layers, packed_or_plain
from ceruleum.engine.sentence_models import load_sentence_transformer
from ceruleum.safety.encoder import minilm_path
from ceruleum.safety.tuned import Layer

pytestmark = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(),  # type: ignore[no-untyped-call]
    reason="this PyTorch has no oneDNN",
)


def linear(dtype: torch.dtype, inputs: int = 384, outputs: int = 1536) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(inputs, outputs).to(dtype).eval()


@pytest.mark.parametrize("shape", [(1, 384), (7, 384), (1, 11, 384), (4, 75, 384)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_a_packed_layer_computes_what_the_plain_one_does(
    dtype: torch.dtype, shape: tuple[int, ...]
) -> None:
    plain = linear(dtype)
    packed = packed_or_plain(plain)
    assert isinstance(packed, PackedLinear)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    with torch.no_grad():
        expected, got = plain(x), packed(x)
    assert got.dtype == dtype and got.shape == expected.shape
    if dtype == torch.bfloat16:  # the same oneDNN kernel, minus the repacking
        assert torch.equal(got, expected)
    else:  # oneDNN's sums against MKL's: last-bit differences
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_packing_a_view_leaves_the_model_it_shows_as_it_is() -> None:
    model = load_sentence_transformer(minilm_path()).model
    bert_layer = model[0].auto_model.get_submodule("encoder.layer.0")
    view = Layer.of(bert_layer, heads=12)
    pack_linear_layers(view)
    assert isinstance(view.query, PackedLinear) and isinstance(view.output, PackedLinear)
    assert isinstance(view.attention_norm, nn.LayerNorm)
    assert type(bert_layer.get_submodule("attention.self.query")) is nn.Linear
    assert type(bert_layer.get_submodule("output.dense")) is nn.Linear


def test_a_layer_that_cannot_be_packed_stays_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unsupported(PackedLinear):
        def __init__(self, linear: nn.Linear) -> None:
            raise RuntimeError("no oneDNN kernel for this")

    monkeypatch.setattr(packed_linear, "PackedLinear", Unsupported)
    plain = linear(torch.float32)
    assert packed_or_plain(plain) is plain


def test_a_packed_layer_that_disagrees_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    class Wrong(PackedLinear):
        def forward(self, x: Tensor) -> Tensor:
            return super().forward(x) + 1.0

    monkeypatch.setattr(packed_linear, "PackedLinear", Wrong)
    plain = linear(torch.bfloat16)
    assert packed_or_plain(plain) is plain
