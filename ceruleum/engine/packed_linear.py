"""Linear layers with their weights packed once, for inference on the CPU.

PyTorch's `nn.Linear` hands its plain weight to oneDNN (bfloat16) or MKL (float32) on every
call, which repack it into their blocked layout each time; for the few rows of a short text that
is a large share of the work: MiniLM's full stage reads a short text 30-45% faster with its
weights packed at load. The ops are the ones PyTorch's own compiler emits for frozen models
(`torch.ops.mkldnn._reorder_linear_weight` and `_linear_pointwise`); they are private, so each
layer is packed only where its packed product agrees with the plain one on a probe input, and
is left as it is otherwise (an older or newer PyTorch, a build without oneDNN).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

# The row count oneDNN chooses its layout for; any count is computed correctly.
ROWS_HINT = 16
_PROBE_ROWS = 5


class PackedLinear(nn.Module):
    """An inference-only copy of a linear layer with its weight in oneDNN's packed layout."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self._packed: Tensor = torch.ops.mkldnn._reorder_linear_weight(
            linear.weight.detach(), ROWS_HINT
        )
        self._bias: Tensor | None = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = torch.ops.mkldnn._linear_pointwise(
            x, self._packed, self._bias, "none", [], ""
        )
        return out


def packed_or_plain(linear: nn.Linear) -> nn.Module:
    """A packed copy of `linear` where it computes what `linear` does on a probe input, else
    `linear` itself."""
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return linear
    try:
        packed = PackedLinear(linear)
        weight = linear.weight
        probe = torch.randn(
            _PROBE_ROWS, linear.in_features, generator=torch.Generator().manual_seed(0)
        )
        probe = probe.to(weight.dtype)
        with torch.no_grad():
            expected, got = linear(probe), packed(probe)
    except (RuntimeError, AttributeError, NotImplementedError):
        logger.debug("linear layers stay unpacked: this PyTorch cannot pack them", exc_info=True)
        return linear
    tolerance = 1e-2 if weight.dtype == torch.bfloat16 else 1e-4
    if got.shape != expected.shape or not torch.allclose(
        got, expected, rtol=tolerance, atol=tolerance
    ):
        logger.warning("a packed linear layer disagreed with the plain one; left unpacked")
        return linear
    return packed


def pack_linear_layers(module: nn.Module) -> nn.Module:
    """`module` with each `nn.Linear` below it replaced, in place, by `packed_or_plain`; for
    inference only (the packed layers hold no parameters). The attribute is reassigned on the
    linear layer's parent: a view that holds another model's linear layers as its own children
    (`safety.tuned.Layer`) is packed while that model stays as it is."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, packed_or_plain(child))
        else:
            pack_linear_layers(child)
    return module
