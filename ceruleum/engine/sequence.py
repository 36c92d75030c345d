"""State of one sequence as it moves through the engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from ceruleum.engine.detokenizer import StreamingText
from ceruleum.engine.llama_runner import Sampler
from ceruleum.engine.sampling import SamplingParams


@dataclass(eq=False, slots=True)
class Sequence:
    request_id: str
    prompt_tokens: list[int]
    params: SamplingParams
    output_tokens: list[int] = field(default_factory=list)
    slot: int | None = None  # llama.cpp seq_id while admitted
    num_cached: int = 0  # tokens of all_tokens already evaluated into the KV cache
    sampler: Sampler | None = None
    text: StreamingText = field(init=False)

    def __post_init__(self) -> None:
        self.text = StreamingText(self.params.stop)

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_tokens) + len(self.output_tokens)

    @property
    def num_pending(self) -> int:
        """Tokens to evaluate before the next sample (the prompt, or the last sampled token)."""
        return self.num_tokens - self.num_cached

    def token_slice(self, start: int, stop: int) -> list[int]:
        n_prompt = len(self.prompt_tokens)
        if stop <= n_prompt:
            return self.prompt_tokens[start:stop]
        if start >= n_prompt:
            return self.output_tokens[start - n_prompt : stop - n_prompt]
        return self.prompt_tokens[start:] + self.output_tokens[: stop - n_prompt]
