"""Prompts of the legacy completions API: strings, token arrays, and fill-in-the-middle."""

from __future__ import annotations

from dataclasses import dataclass

from ceruleum.api.completions.protocol import CompletionRequest
from ceruleum.api.errors import InvalidRequestError
from ceruleum.engine.errors import ModelCapabilityError
from ceruleum.engine.pool import ChatModel


@dataclass(frozen=True, slots=True)
class CompletionPrompt:
    tokens: list[int]
    echo_text: str  # what `echo` prepends: the prompt as the client sent it


def completion_prompts(chat: ChatModel, body: CompletionRequest) -> list[CompletionPrompt]:
    raw = body.prompt
    items: list[str | list[int]]
    if isinstance(raw, str):
        items = [raw]
    elif raw and all(isinstance(x, int) for x in raw):
        items = [list(raw)]  # type: ignore[arg-type]
    else:
        items = list(raw)  # type: ignore[arg-type]
    if not items:
        raise InvalidRequestError("'prompt' must not be empty.", param="prompt")
    if body.suffix is not None and (len(items) != 1 or not isinstance(items[0], str)):
        raise InvalidRequestError("'suffix' needs a single string prompt.", param="suffix")
    return [_one(chat, item, body.suffix, index) for index, item in enumerate(items)]


def _one(
    chat: ChatModel, item: str | list[int], suffix: str | None, index: int
) -> CompletionPrompt:
    model = chat.model
    if isinstance(item, list):
        if not all(model.is_valid_token(t) for t in item):
            raise InvalidRequestError(
                f"prompt[{index}] has token ids outside this model's vocabulary "
                f"(0 to {model.n_vocab - 1}).",
                param="prompt",
            )
        return CompletionPrompt(item, model.detokenize(item))
    if suffix is not None:
        return CompletionPrompt(fill_in_the_middle_tokens(chat, item, suffix), item)
    tokens = model.tokenize(item, add_special=True, parse_special=False)
    if not tokens:
        raise InvalidRequestError("'prompt' must not be empty.", param="prompt")
    return CompletionPrompt(tokens, item)


def fill_in_the_middle_tokens(chat: ChatModel, prefix: str, suffix: str) -> list[int]:
    """<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>, with the model's own FIM tokens;
    user text is never parsed for special tokens."""
    if chat.fim_tokens is None:
        raise ModelCapabilityError(
            f"The model '{chat.spec.id}' has no fill-in-the-middle tokens, so 'suffix' is not "
            "supported for it. Serve a code model whose GGUF defines FIM tokens."
        )
    fim_prefix, fim_suffix, fim_middle = chat.fim_tokens
    model = chat.model
    head = [model.bos_id] if model.add_bos and model.bos_id >= 0 else []
    return [
        *head,
        fim_prefix,
        *model.tokenize(prefix, add_special=False, parse_special=False),
        fim_suffix,
        *model.tokenize(suffix, add_special=False, parse_special=False),
        fim_middle,
    ]
