"""Engine exceptions. The API layer maps them to HTTP errors in ``api/errors.py``."""


class EngineError(Exception):
    """Base class for engine errors."""


class EngineDeadError(EngineError):
    """The engine loop has stopped; no request can be served until it is restarted."""


class RequestFailedError(EngineError):
    """One request failed inside the engine; the engine itself keeps running."""


class ContextWindowExceededError(EngineError):
    """Prompt tokens plus requested output tokens do not fit the model's context window."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context_window: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_window = context_window
        super().__init__(
            f"This model's maximum context length is {context_window} tokens. However, you "
            f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, "
            f"{max_tokens} for the completion). Please reduce the prompt or max_tokens."
        )


class ModelCapabilityError(EngineError):
    """The model cannot do what was asked (e.g. fill-in-the-middle without FIM tokens)."""
