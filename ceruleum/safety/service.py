"""Building the server's content filter: the analyzers named in settings, the classifier
loaded in the background so that the server is ready before the transformer stage is."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence

from ceruleum.safety.analyzers import (
    Analyzer,
    AnalyzerFactory,
    BlocklistAnalyzer,
    ClassifierAnalyzer,
    ProfanityAnalyzer,
    plugin_factories,
)
from ceruleum.safety.classifier import (
    ClassifierWeights,
    ContentClassifier,
    LogisticStage,
)
from ceruleum.safety.filter import ContentFilter
from ceruleum.safety.policy import DEFAULT_POLICY, ContentFilterPolicy, PolicyError
from ceruleum.safety.precision import PrecisionSetting, classifier_precision

logger = logging.getLogger(__name__)

DEFAULT_ANALYZERS = ("classifier", "profanity", "blocklists")


class UnknownAnalyzerError(ValueError):
    pass


class ContentFilterRefusedError(Exception):
    """Filtering may be switched off only in development mode (benchmarks)."""


def check_filter_switch(*, enabled: bool, dev_mode: bool) -> None:
    if not enabled and not dev_mode:
        raise ContentFilterRefusedError(
            "Refusing to start: content filtering can only be switched off in development "
            "mode. To filter less, give deployments a policy with higher thresholds or 'off' "
            "(annotate only) for some categories."
        )


def load_classifier(precision: PrecisionSetting = "auto") -> ContentClassifier:
    """The shipped cascade, for prompts and completions alike: the fast logistic stage, then
    MiniLM fine-tuned on our labels where it is shipped, else the logistic heads over MiniLM's
    embedding; MiniLM in `precision` (safety/precision.py)."""
    from ceruleum.safety.encoder import StaticEncoder, TransformerEncoder
    from ceruleum.safety.tuned import TunedClassifier, tuned_model_shipped

    weights = ClassifierWeights.load()
    fast = LogisticStage(StaticEncoder(), weights.stages["fast"])
    if not tuned_model_shipped():
        full = LogisticStage(TransformerEncoder(precision), weights.stages["full"])
        return ContentClassifier({"fast": fast, "full": full}, escalate_at=weights.escalate_at)
    tuned = TunedClassifier(precision=precision)
    return ContentClassifier(
        {"fast": fast, "full": tuned},
        escalate_at=weights.escalate_at,
        fast_share=tuned.fast_stage_share(),
    )


class ClassifierLoader:
    """Loads the classifier once, on a background thread; `get` waits for it."""

    def __init__(self, precision: PrecisionSetting = "auto") -> None:
        self._precision: PrecisionSetting = precision
        self._classifier: ContentClassifier | None = None
        self._error: BaseException | None = None
        self._loaded = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._load, name="ceruleum-safety-load", daemon=True).start()

    def _load(self) -> None:
        try:
            self._classifier = load_classifier(self._precision)
            precision = classifier_precision(self._precision)
            logger.info("content classifier ready (MiniLM in %s)", precision)
        except BaseException as exc:
            logger.exception("the content classifier failed to load")
            self._error = exc
        finally:
            self._loaded.set()

    @property
    def state(self) -> str:
        if not self._loaded.is_set():
            return "loading"
        return "ready" if self._classifier is not None else "failed"

    def get(self) -> ContentClassifier:
        self._loaded.wait()
        if self._classifier is None:
            raise RuntimeError("the content classifier is not available") from self._error
        return self._classifier


def default_policy(configured: str | None) -> ContentFilterPolicy:
    """The server-wide policy for served models called by id. Raises ContentFilterRefusedError."""
    if not configured:
        return DEFAULT_POLICY
    try:
        policy = ContentFilterPolicy.from_dict(json.loads(configured))
    except (ValueError, PolicyError) as exc:
        raise ContentFilterRefusedError(
            f"Refusing to start: CERULEUM_CONTENT_FILTER_DEFAULT_POLICY is not a valid policy "
            f"({exc})."
        ) from None
    if policy.blocklist_names:
        raise ContentFilterRefusedError(
            "Refusing to start: blocklists belong to projects; the server-wide default policy "
            "cannot attach any."
        )
    return policy


def build_content_filter(
    names: Sequence[str] = DEFAULT_ANALYZERS, precision: PrecisionSetting = "auto"
) -> ContentFilter:
    """The analyzers by name: the built-ins, then plugins from the entry-point group; the
    classifier's MiniLM in `precision`."""
    loader = ClassifierLoader(precision)
    factories: dict[str, AnalyzerFactory] = {
        "classifier": lambda: ClassifierAnalyzer(loader.get),
        "profanity": ProfanityAnalyzer,
        "blocklists": BlocklistAnalyzer,
    }
    unknown = [n for n in names if n not in factories]
    if unknown:
        factories.update(plugin_factories())
    analyzers: list[Analyzer] = []
    for name in names:
        if name not in factories:
            raise UnknownAnalyzerError(f"no content analyzer is registered as {name!r}")
        analyzers.append(factories[name]())
    if "classifier" in names:
        loader.start()
    return ContentFilter(
        analyzers, state=lambda: loader.state if "classifier" in names else "ready"
    )
