"""Wire schema of POST /v1/completions (the legacy text-completion API)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictInt, StrictStr

from ceruleum.api.protocol import SamplingFields

TokenIds = Annotated[list[StrictInt], Field(min_length=1)]


class CompletionRequest(SamplingFields):
    prompt: StrictStr | list[StrictStr] | TokenIds | list[TokenIds]
    suffix: StrictStr | None = None
    max_tokens: StrictInt | None = None  # None: the deployment's default, else 16 as OpenAI
    echo: StrictBool = False
    logprobs: StrictInt | None = Field(default=None, ge=0, le=5)
    best_of: StrictInt | None = Field(default=None, ge=1)
