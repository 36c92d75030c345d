from __future__ import annotations

import pytest

from ceruleum.safety.categories import Severity
from ceruleum.safety.policy import DEFAULT_POLICY, ContentFilterPolicy, PolicyError


def test_default_is_azures_default() -> None:
    wire = DEFAULT_POLICY.to_dict()
    assert wire["prompt"] == {
        "hate": "medium",
        "sexual": "medium",
        "violence": "medium",
        "self_harm": "medium",
        "jailbreak": True,
        "indirect_attack": False,
        "profanity": False,
        "blocklists": [],
    }
    assert "jailbreak" not in wire["completion"]
    assert ContentFilterPolicy.from_dict(None) is DEFAULT_POLICY
    assert ContentFilterPolicy.from_dict({}) == DEFAULT_POLICY


def test_thresholds_decide_what_is_filtered() -> None:
    policy = ContentFilterPolicy.from_dict(
        {"prompt": {"hate": "low", "violence": "high", "sexual": "off"}}
    )
    rules = policy.prompt
    assert rules.filters("hate", Severity.LOW)
    assert not rules.filters("violence", Severity.MEDIUM)
    assert rules.filters("violence", Severity.HIGH)
    assert not rules.filters("sexual", Severity.HIGH)  # annotate only
    assert rules.filters("self_harm", Severity.MEDIUM)  # omitted: the default
    assert not rules.filters("self_harm", Severity.LOW)
    assert not rules.filters("hate", Severity.SAFE)


def test_round_trip() -> None:
    wire = {
        "prompt": {"hate": "high", "jailbreak": False, "blocklists": ["a", "b", "a"]},
        "completion": {"profanity": True, "blocklists": ["b"]},
    }
    policy = ContentFilterPolicy.from_dict(wire)
    assert policy.prompt.blocklists == ("a", "b")
    assert policy.blocklist_names == ("a", "b")
    assert ContentFilterPolicy.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize(
    ("wire", "param"),
    [
        ([], "content_filter"),
        ({"prompts": {}}, "content_filter.prompts"),
        ({"prompt": {"hate": "severe"}}, "content_filter.prompt.hate"),
        ({"prompt": {"hate": 2}}, "content_filter.prompt.hate"),
        ({"prompt": {"jailbreak": "yes"}}, "content_filter.prompt.jailbreak"),
        ({"completion": {"jailbreak": True}}, "content_filter.completion.jailbreak"),
        ({"prompt": {"blocklists": "one"}}, "content_filter.prompt.blocklists"),
        ({"prompt": {"blocklists": ["../x"]}}, "content_filter.prompt.blocklists"),
        (
            {"prompt": {"blocklists": [f"b{i}" for i in range(33)]}},
            "content_filter.prompt.blocklists",
        ),
        ({"prompt": []}, "content_filter.prompt"),
    ],
)
def test_invalid_policies_name_the_field(wire: object, param: str) -> None:
    with pytest.raises(PolicyError) as caught:
        ContentFilterPolicy.from_dict(wire)
    assert caught.value.param == param


def test_the_server_wide_default_policy() -> None:
    from ceruleum.safety.service import ContentFilterRefusedError, default_policy

    assert default_policy(None) is DEFAULT_POLICY
    relaxed = default_policy('{"prompt": {"violence": "high"}}')
    assert relaxed.prompt.thresholds["violence"] == Severity.HIGH
    for bad in (
        "{not json",
        '{"prompt": {"hate": "extreme"}}',
        '{"prompt": {"blocklists": ["x"]}}',
    ):
        with pytest.raises(ContentFilterRefusedError):
            default_policy(bad)
