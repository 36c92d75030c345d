"""A deployment's content-filter policy: what is filtered, separately for prompts and completions.

The wire form (REST API, CLI, the database's JSON column) is

    {"prompt":     {"hate": "medium", "sexual": "medium", "violence": "medium",
                    "self_harm": "medium", "jailbreak": true, "indirect_attack": false,
                    "profanity": false, "blocklists": ["competitors"]},
     "completion": {"hate": "medium", ..., "profanity": false, "blocklists": []}}

A category's threshold is the lowest severity that is filtered ("low": low and above, "medium":
medium and above, "high": high only) or "off" (annotate only). Every field may be omitted and then
takes Azure's default: medium and above for every category, jailbreak attacks filtered, indirect
attacks and profanity annotated only, no blocklists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ceruleum.safety.categories import CATEGORIES, Severity

Source = Literal["prompt", "completion"]
THRESHOLDS: dict[str, Severity | None] = {
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "off": None,
}
MAX_ATTACHED_BLOCKLISTS = 32
BLOCKLIST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PolicyError(ValueError):
    """An invalid policy; ``param`` names the field as the API spells it."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.message, self.param = message, param


@dataclass(frozen=True, slots=True)
class FilterRules:
    """What one side (prompt or completion) filters. Detection always runs and is annotated."""

    thresholds: Mapping[str, Severity | None] = field(
        default_factory=lambda: dict.fromkeys(CATEGORIES, Severity.MEDIUM)
    )
    jailbreak: bool = False
    indirect_attack: bool = False
    profanity: bool = False
    blocklists: tuple[str, ...] = ()

    def filters(self, category: str, severity: Severity) -> bool:
        threshold = self.thresholds.get(category)
        return threshold is not None and severity >= threshold

    def to_dict(self, source: Source) -> dict[str, Any]:
        out: dict[str, Any] = {
            category: _threshold_name(self.thresholds.get(category)) for category in CATEGORIES
        }
        if source == "prompt":
            out["jailbreak"] = self.jailbreak
            out["indirect_attack"] = self.indirect_attack
        out["profanity"] = self.profanity
        out["blocklists"] = list(self.blocklists)
        return out


DEFAULT_PROMPT_RULES = FilterRules(jailbreak=True)
DEFAULT_COMPLETION_RULES = FilterRules()


@dataclass(frozen=True, slots=True)
class ContentFilterPolicy:
    prompt: FilterRules = DEFAULT_PROMPT_RULES
    completion: FilterRules = DEFAULT_COMPLETION_RULES

    def rules(self, source: Source) -> FilterRules:
        return self.prompt if source == "prompt" else self.completion

    @property
    def blocklist_names(self) -> tuple[str, ...]:
        """Every blocklist either side uses, each once."""
        return tuple(dict.fromkeys((*self.prompt.blocklists, *self.completion.blocklists)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt.to_dict("prompt"),
            "completion": self.completion.to_dict("completion"),
        }

    @classmethod
    def from_dict(cls, data: object, *, param: str = "content_filter") -> ContentFilterPolicy:
        """Parse the wire form; omitted fields take the defaults. Raises PolicyError."""
        if data is None:
            return DEFAULT_POLICY
        if not isinstance(data, dict):
            raise PolicyError(f"'{param}' must be an object.", param=param)
        unknown = sorted(set(data) - {"prompt", "completion"})
        if unknown:
            raise PolicyError(
                f"Unknown field '{param}.{unknown[0]}'.", param=f"{param}.{unknown[0]}"
            )
        return cls(
            prompt=_rules(data.get("prompt"), "prompt", DEFAULT_PROMPT_RULES, f"{param}.prompt"),
            completion=_rules(
                data.get("completion"),
                "completion",
                DEFAULT_COMPLETION_RULES,
                f"{param}.completion",
            ),
        )


DEFAULT_POLICY = ContentFilterPolicy()


def _threshold_name(threshold: Severity | None) -> str:
    return "off" if threshold is None else threshold.wire


def _rules(data: object, source: Source, default: FilterRules, param: str) -> FilterRules:
    if data is None:
        return default
    if not isinstance(data, dict):
        raise PolicyError(f"'{param}' must be an object.", param=param)
    allowed = {*CATEGORIES, "profanity", "blocklists"}
    if source == "prompt":
        allowed |= {"jailbreak", "indirect_attack"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise PolicyError(
            f"Unknown field '{param}.{unknown[0]}'"
            + (
                " (detectors apply to prompts only)."
                if unknown[0] in ("jailbreak", "indirect_attack")
                else "."
            ),
            param=f"{param}.{unknown[0]}",
        )
    thresholds = dict(default.thresholds)
    for category in CATEGORIES:
        if category in data:
            value = data[category]
            if not isinstance(value, str) or value not in THRESHOLDS:
                raise PolicyError(
                    f"'{param}.{category}' must be one of {', '.join(THRESHOLDS)}.",
                    param=f"{param}.{category}",
                )
            thresholds[category] = THRESHOLDS[value]
    flags = {}
    for flag in ("jailbreak", "indirect_attack", "profanity"):
        if flag in data:
            if not isinstance(data[flag], bool):
                raise PolicyError(
                    f"'{param}.{flag}' must be true or false.", param=f"{param}.{flag}"
                )
            flags[flag] = data[flag]
    blocklists = default.blocklists
    if "blocklists" in data:
        blocklists = _blocklist_names(data["blocklists"], f"{param}.blocklists")
    return FilterRules(
        thresholds=thresholds,
        jailbreak=flags.get("jailbreak", default.jailbreak),
        indirect_attack=flags.get("indirect_attack", default.indirect_attack),
        profanity=flags.get("profanity", default.profanity),
        blocklists=blocklists,
    )


def _blocklist_names(value: object, param: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_ATTACHED_BLOCKLISTS:
        raise PolicyError(
            f"'{param}' must be a list of at most {MAX_ATTACHED_BLOCKLISTS} blocklist names.",
            param=param,
        )
    for name in value:
        if not isinstance(name, str) or BLOCKLIST_NAME.fullmatch(name) is None:
            raise PolicyError(f"'{param}' holds an invalid blocklist name: {name!r}.", param=param)
    return tuple(dict.fromkeys(value))
