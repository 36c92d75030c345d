"""Log-probabilities of sampled tokens from raw logits (vectorised; no per-vocabulary loops)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ceruleum.engine.llama_model import LlamaModel
from ceruleum.engine.outputs import TokenLogprob, TopLogprob


def token_logprob(
    model: LlamaModel, logits: npt.NDArray[np.float32], token_id: int, top_n: int
) -> TokenLogprob:
    values = logits.astype(np.float64, copy=False)
    peak = float(values.max())
    log_norm = peak + float(np.log(np.exp(values - peak).sum()))
    top: tuple[TopLogprob, ...] = ()
    if top_n > 0:
        candidates = np.argpartition(values, -top_n)[-top_n:]
        ordered = candidates[np.argsort(values[candidates])[::-1]]
        top = tuple(_top_entry(model, int(i), float(values[i]) - log_norm) for i in ordered)
    piece = model.piece(token_id)
    return TokenLogprob(
        token_id=token_id,
        token=piece.decode("utf-8", errors="replace"),
        token_bytes=piece,
        logprob=float(values[token_id]) - log_norm,
        top=top,
    )


def _top_entry(model: LlamaModel, token_id: int, logprob: float) -> TopLogprob:
    piece = model.piece(token_id)
    return TopLogprob(token_id, piece.decode("utf-8", errors="replace"), piece, logprob)
