"""The fine-tuned content classifier: all-MiniLM-L6-v2 with its top layers trained on our labels.

The bundled MiniLM's lower layers run unchanged (the weights of the copy the embeddings
endpoint shares, read but never written; served from packed copies, see below) and their output
goes through fine-tuned copies of the top layers, a mean over the tokens and a linear layer with
one output per classifier head (`head_names()`). Only the fine-tuned part is saved
(`models/minilm-tuned-top.safetensors`, with a JSON of its settings and thresholds);
`ceruleum.safety.training.finetune` makes both. Where the file is shipped it is the content
classifier's full stage (safety/service.py). Served in the precision `safety/precision.py`
chooses (bfloat16 where the CPU multiplies it natively), like the logistic full stage's MiniLM,
with its linear weights packed once at load (`engine/packed_linear.py`), and the windows of
concurrent requests go through in shared batches.

The layers are written out here in plain torch rather than called through transformers, so that
training, the shipped file and serving do not depend on one transformers version's layer API.
Like the logistic classifier, a long text scores as its worst window (`features.windows`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ceruleum.engine.packed_linear import pack_linear_layers
from ceruleum.engine.sentence_models import (
    SharedModel,
    load_sentence_transformer,
    quantize_linear_layers,
)
from ceruleum.safety.batching import CLASSIFIER_RUN_CHARS, SharedBatches
from ceruleum.safety.classifier import Array, head_names, models_dir
from ceruleum.safety.features import worst_window
from ceruleum.safety.precision import PrecisionSetting, classifier_precision

TUNED_FILE = "minilm-tuned-top.safetensors"
DROPOUT = 0.1
BATCH = 64


def metadata_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def tuned_model_shipped() -> bool:
    return (models_dir() / TUNED_FILE).exists()


class Layer(nn.Module):
    """One BERT encoder layer (post-norm, exact GELU), over the given submodules."""

    def __init__(self, modules: dict[str, nn.Module], heads: int) -> None:
        super().__init__()
        self.query = modules["query"]
        self.key = modules["key"]
        self.value = modules["value"]
        self.attention_out = modules["attention_out"]
        self.attention_norm = modules["attention_norm"]
        self.intermediate = modules["intermediate"]
        self.output = modules["output"]
        self.output_norm = modules["output_norm"]
        self.heads = heads

    @classmethod
    def blank(cls, dims: int, inner: int, heads: int, eps: float) -> Layer:
        """A layer of MiniLM's shape in float32 with fresh weights, for a saved top to load."""
        modules: dict[str, nn.Module] = {
            "query": nn.Linear(dims, dims),
            "key": nn.Linear(dims, dims),
            "value": nn.Linear(dims, dims),
            "attention_out": nn.Linear(dims, dims),
            "attention_norm": nn.LayerNorm(dims, eps=eps),
            "intermediate": nn.Linear(dims, inner),
            "output": nn.Linear(inner, dims),
            "output_norm": nn.LayerNorm(dims, eps=eps),
        }
        return cls(modules, heads)

    @classmethod
    def of(cls, bert_layer: nn.Module, heads: int) -> Layer:
        """A view of a transformers BertLayer: its own modules, shared, not copied."""
        names = {
            "query": "attention.self.query",
            "key": "attention.self.key",
            "value": "attention.self.value",
            "attention_out": "attention.output.dense",
            "attention_norm": "attention.output.LayerNorm",
            "intermediate": "intermediate.dense",
            "output": "output.dense",
            "output_norm": "output.LayerNorm",
        }
        return cls({k: bert_layer.get_submodule(v) for k, v in names.items()}, heads)

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """hidden: (batch, tokens, dims); mask: (batch, tokens), True on real tokens."""
        batch, tokens, dims = hidden.shape

        def split(x: Tensor) -> Tensor:
            return x.view(batch, tokens, self.heads, dims // self.heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            split(self.query(hidden)),
            split(self.key(hidden)),
            split(self.value(hidden)),
            attn_mask=mask[:, None, None, :],
            dropout_p=DROPOUT if self.training else 0.0,
        )
        attended = attended.transpose(1, 2).reshape(batch, tokens, dims)
        projected: Tensor = self.attention_out(attended)
        hidden = self.attention_norm(hidden + F.dropout(projected, DROPOUT, self.training))
        expanded = F.gelu(self.intermediate(hidden))
        out: Tensor = self.output(expanded)
        result: Tensor = self.output_norm(hidden + F.dropout(out, DROPOUT, self.training))
        return result


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class TunedTop(nn.Module):
    """The fine-tuned part: the top transformer layers, a token mean and the linear heads."""

    def __init__(self, layers: Sequence[Layer], dims: int, outputs: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(dims, outputs)

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        for layer in self.layers:
            hidden = layer(hidden, mask)
        pooled = F.dropout(mean_pool(hidden, mask), DROPOUT, self.training)
        logits: Tensor = self.head(pooled)
        return logits


class Base:
    """The bundled MiniLM as shared with the embeddings endpoint: its tokenizer and, run in
    inference only, its embeddings and lower layers."""

    def __init__(self, model: Any) -> None:
        self.tokenizer: Any = model.tokenizer
        self.bert = cast(nn.Module, model[0].auto_model)
        config: Any = getattr(self.bert, "config")  # noqa: B009 (nn.Module's typing hides it)
        if config.hidden_act != "gelu":
            raise ValueError(f"unexpected activation {config.hidden_act!r}")
        self.heads = int(config.num_attention_heads)
        self.dims = int(config.hidden_size)
        self.depth = int(config.num_hidden_layers)
        self.inner = int(config.intermediate_size)
        self.eps = float(config.layer_norm_eps)
        self._embeddings = self.bert.get_submodule("embeddings")
        self._layers = [self.layer(i) for i in range(self.depth)]
        for layer in self._layers:
            layer.training = False  # not .eval(): that would reach into the shared modules

    def pack_for_inference(self) -> None:
        """Pack the lower layers' linear weights once (engine/packed_linear.py), in this base's
        own views: the shared model, which the embeddings endpoint may read, stays as it is."""
        for layer in self._layers:
            pack_linear_layers(layer)

    def layer(self, index: int) -> Layer:
        return Layer.of(self.bert.get_submodule(f"encoder.layer.{index}"), self.heads)

    def blank_top(self, count: int) -> TunedTop:
        """A top of `count` layers with fresh float32 weights, whatever precision this base is
        in: serving loads the saved top into it (its weights are all overwritten)."""
        layers = [Layer.blank(self.dims, self.inner, self.heads, self.eps) for _ in range(count)]
        return TunedTop(layers, self.dims, len(head_names()))

    def trainable_top(self, count: int) -> TunedTop:
        """Independent copies of the top `count` layers under a fresh head."""
        layers = [copy.deepcopy(self.layer(i)) for i in range(self.depth - count, self.depth)]
        top = TunedTop(layers, self.dims, len(head_names()))
        for parameter in top.parameters():
            parameter.requires_grad_(True)
        return top

    def tokenize(self, texts: Sequence[str], max_length: int) -> tuple[Tensor, Tensor, Tensor]:
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        ids = cast(Tensor, batch["input_ids"])
        types = cast(Tensor, batch.get("token_type_ids", torch.zeros_like(ids)))
        mask = cast(Tensor, batch["attention_mask"]).bool()
        return ids, types, mask

    def hidden_states(self, ids: Tensor, types: Tensor, mask: Tensor, upto: int) -> list[Tensor]:
        """The embeddings' output and then each of the first `upto` layers' (no gradients)."""
        with torch.no_grad():
            states = [cast(Tensor, self._embeddings(input_ids=ids, token_type_ids=types))]
            for layer in self._layers[:upto]:
                states.append(layer(states[-1], mask))
        return states


class TunedClassifier:
    """Per-head probabilities from the shipped fine-tuned model: a `Scorer` (classifier.py)."""

    def __init__(self, path: Path | None = None, precision: PrecisionSetting = "auto") -> None:
        weights = path or models_dir() / TUNED_FILE
        self.metadata: dict[str, Any] = json.loads(metadata_path(weights).read_text())
        if self.metadata["heads"] != head_names():
            raise ValueError("the tuned model does not match this version's heads")
        self.max_length = int(self.metadata["max_length"])
        count = int(self.metadata["top_layers"])
        from ceruleum.safety.encoder import minilm_path  # encoder imports the classifier

        chosen = classifier_precision(precision)
        self._shared: SharedModel = load_sentence_transformer(minilm_path(), chosen)
        self._base = Base(self._shared.model)
        self._first = self._base.depth - count
        # Built in float32 (an int8 base's layers cannot load float weights), then converted.
        self._top = self._base.blank_top(count)
        from safetensors.torch import load_file

        state = {k: v.float() for k, v in load_file(str(weights)).items()}
        self._top.load_state_dict(state)
        self._top.to(torch.bfloat16 if chosen == "bfloat16" else torch.float32)
        self._top.eval()
        self._top.requires_grad_(False)
        if chosen == "int8":
            quantize_linear_layers(self._top)
        else:  # bitwise the same probabilities in bfloat16, within 1e-6 in float32
            self._base.pack_for_inference()
            pack_linear_layers(self._top)
        self._thresholds: Array = np.array(
            [self.metadata["thresholds"][h] for h in head_names()], dtype=np.float32
        )
        self._batches = SharedBatches(self._read, max_chars=CLASSIFIER_RUN_CHARS)

    @property
    def thresholds(self) -> Array:
        """The thresholds of what this model was shipped to serve: its own probabilities, or
        its blend with the fast stage where the metadata names one (`fast_stage_share`)."""
        return self._thresholds

    def fast_stage_share(self) -> Array:
        """Per head, the fast stage's weight in the blend this model was shipped with."""
        shares = self.metadata.get("blend", {}).get("fast", {})
        return np.array([shares.get(h, 0.0) for h in head_names()], dtype=np.float32)

    def window_probabilities(self, pieces: Sequence[str]) -> Array:
        """(pieces, heads) probabilities, each piece read as one window."""
        return self._batches.encode(pieces)

    def _read(self, pieces: list[str]) -> Array:
        out = np.zeros((len(pieces), len(head_names())), dtype=np.float32)
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
        with self._shared.lock:
            for start in range(0, len(order), BATCH):
                chosen = order[start : start + BATCH]
                batch = [pieces[i] for i in chosen]
                ids, types, mask = self._base.tokenize(batch, self.max_length)
                hidden = self._base.hidden_states(ids, types, mask, self._first)[-1]
                with torch.no_grad():
                    logits = self._top(hidden, mask)
                out[chosen] = torch.sigmoid(logits.float()).numpy()
        return out

    def probabilities(self, texts: Sequence[str]) -> Array:
        """(texts, heads) probabilities; a long text scores as its worst window."""
        return worst_window(texts, self.window_probabilities, len(head_names()))
