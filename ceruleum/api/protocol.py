"""Wire schemas shared by the generation endpoints (lenient: unknown fields are accepted)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

# Fields with which other gateways let a caller redirect the request to another provider:
# accepting them silently would suggest we honour them (and invite SSRF if we ever did).
PROVIDER_OVERRIDES = frozenset(
    {"api_base", "base_url", "api_key", "azure_endpoint", "azure_ad_token", "custom_llm_provider"}
)


class WireModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _refuse_provider_overrides(cls, data: Any) -> Any:
        if isinstance(data, dict):
            named = sorted(PROVIDER_OVERRIDES & set(data))
            if named:
                raise ValueError(f"'{named[0]}' cannot be set in a request body")
        return data


class StreamOptions(WireModel):
    include_usage: StrictBool = False


Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]


class SamplingFields(WireModel):
    """Fields common to chat and legacy completions."""

    model: StrictStr
    n: StrictInt = Field(default=1, ge=1)
    temperature: Temperature | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    stop: StrictStr | list[StrictStr] | None = None
    seed: StrictInt | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: StrictStr | None = None
    # Extensions beyond OpenAI's schema, as vLLM and llama.cpp's server accept them.
    top_k: StrictInt | None = Field(default=None, ge=0)
    min_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def extra_fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
