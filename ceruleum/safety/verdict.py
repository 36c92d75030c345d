"""A filter verdict on one prompt or completion, and its Azure OpenAI annotation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ceruleum.safety.analyzers import Findings
from ceruleum.safety.categories import CATEGORIES, Severity
from ceruleum.safety.policy import FilterRules, Source

FILTER_ERROR = {"code": "content_filter_error", "message": "The contents are not filtered"}


@dataclass(frozen=True, slots=True)
class Verdict:
    source: Source
    rules: FilterRules
    findings: Findings
    failed: frozenset[str] = field(default_factory=frozenset)  # annotation keys left unanswered
    has_documents: bool = False

    @property
    def filtered_by(self) -> list[str]:
        """The annotation keys that filter this item, in Azure's order."""
        found, rules = self.findings, self.rules
        out = [
            c
            for c in CATEGORIES
            if c not in self.failed and rules.filters(c, found.severities.get(c, Severity.SAFE))
        ]
        if self.source == "prompt":
            if rules.jailbreak and found.detected.get("jailbreak"):
                out.append("jailbreak")
            if rules.indirect_attack and found.detected.get("indirect_attack"):
                out.append("indirect_attack")
        if rules.profanity and found.detected.get("profanity"):
            out.append("profanity")
        if any(found.blocklist_hits.get(name) for name in rules.blocklists):
            out.append("custom_blocklists")
        return out

    @property
    def filtered(self) -> bool:
        return bool(self.filtered_by)

    def annotation(self) -> dict[str, Any]:
        """`content_filter_results` exactly as Azure OpenAI writes it."""
        found, rules, out = self.findings, self.rules, {}
        filtered = set(self.filtered_by)
        for category in CATEGORIES:
            if category not in self.failed:
                severity = found.severities.get(category, Severity.SAFE)
                out[category] = {"filtered": category in filtered, "severity": severity.wire}
        detectors = ["jailbreak"] if self.source == "prompt" else []
        if self.source == "prompt" and self.has_documents:
            detectors.append("indirect_attack")
        for detector in [*detectors, "profanity"]:
            if detector not in self.failed:
                out[detector] = {
                    "filtered": detector in filtered,
                    "detected": bool(found.detected.get(detector, False)),
                }
        if "custom_blocklists" not in self.failed:
            details = [
                {"filtered": bool(found.blocklist_hits.get(name)), "id": name}
                for name in rules.blocklists
                if name in found.blocklist_hits
            ]
            out["custom_blocklists"] = {
                "filtered": "custom_blocklists" in filtered,
                "details": details,
            }
        if self.failed:
            out["error"] = dict(FILTER_ERROR)
        return out
