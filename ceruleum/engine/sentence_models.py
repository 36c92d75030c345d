"""sentence-transformers models, loaded once per process and quietly.

The embeddings endpoint and the content classifier both read with the bundled MiniLM, each in the
precision it needs: one copy per (path, precision) serves every caller. Every call goes through
its lock: the fast tokenizer under it is not thread-safe (concurrent calls that set truncation
fail with "Already borrowed"), and torch already spreads one encode over the cores it may use.
Loading prints nothing: transformers' progress bars and load report would otherwise land on
whatever stderr is current, in server logs and in the middle of CLI output.

PyTorch's CPU threads share the cores the engine decodes on (it takes them all): the server sets
how many with `use_torch_threads` before the first load (settings.torch_threads).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ceruleum.engine.fair_lock import FairLock

Precision = Literal["float32", "bfloat16", "int8"]


@dataclass(frozen=True, slots=True)
class SharedModel:
    model: Any  # a SentenceTransformer
    # Held for every call; fair, so that one caller's long run of calls cannot shut out others.
    lock: FairLock = field(default_factory=FairLock)


_loading = threading.Lock()
_models: dict[tuple[Path, Precision], SharedModel] = {}
_torch_threads: int | None = None  # None: PyTorch's own default (one per core)


def use_torch_threads(threads: int | None) -> None:
    """PyTorch's intra-op threads for the models of this process, from the next load on."""
    global _torch_threads
    if threads is not None and threads < 1:
        raise ValueError("torch threads must be at least 1")
    _torch_threads = threads


def load_sentence_transformer(path: Path, precision: Precision = "float32") -> SharedModel:
    """The model at `path` on the CPU; the same one for every caller in this process."""
    key = (path.resolve(), precision)
    with _loading:
        shared = _models.get(key)
        if shared is None:
            shared = SharedModel(_load_quietly(*key))
            _models[key] = shared
        return shared


def bfloat16_is_fast() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); elsewhere PyTorch
    emulates it, slower than float32."""
    import torch

    cpu: Any = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def quantize_linear_layers(module: Any) -> Any:
    """`module` with its linear layers swapped, in place, for int8 ones that quantize their input
    on the fly (weights int8 per output channel, activations per batch). On CPUs without native
    bfloat16 this makes MiniLM about 1.8 times as fast as float32, at some cost in accuracy:
    per-tensor weights moved MiniLM's embeddings of short texts to a cosine of 0.85-0.96 from
    float32's, per channel 0.92-0.98 (docs/safety.md, "Precision"). PyTorch marks this API
    deprecated in favour of torchao; it still ships, and is kept quiet here."""
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(  # type: ignore[no-untyped-call]
            module, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )


def _load_quietly(path: Path, precision: Precision) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    if _torch_threads is not None:
        # Process-wide; threads that have not run torch yet (the encode workers) take it up.
        torch.set_num_threads(_torch_threads)

    verbosity = transformers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model = SentenceTransformer(str(path), device="cpu")
        if precision == "int8":
            return quantize_linear_layers(model)
        return model.to(torch.bfloat16) if precision == "bfloat16" else model
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
