"""The Deployment rules: names, fields, defaults, limits, quotas, and binding to models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ceruleum.deployments import (
    Deployment,
    DeploymentLimitError,
    InvalidDeploymentError,
    SamplingDefaults,
    check_model_served,
    check_name_free,
    offline_model_id,
    parse_policy,
)
from ceruleum.safety.policy import DEFAULT_POLICY

MODEL = "smollm2-135m-instruct"
PROJECT = "proj_a"


def make(
    name: str = "chat",
    *,
    defaults: SamplingDefaults | None = None,
    max_tokens_limit: int | None = None,
    tokens_per_minute: int | None = None,
    requests_per_minute: int | None = None,
    content_filter: Any = DEFAULT_POLICY,
) -> Deployment:
    return Deployment.new(
        name,
        MODEL,
        project_id=PROJECT,
        defaults=defaults,
        max_tokens_limit=max_tokens_limit,
        tokens_per_minute=tokens_per_minute,
        requests_per_minute=requests_per_minute,
        content_filter=content_filter,
        now=1_700_000_000,
    )


# --- names, fields, defaults and limits ------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "A1", "gpt-4o.mini_2", "0day", "x" * 64])
def test_valid_names(name: str) -> None:
    assert make(name).name == name


@pytest.mark.parametrize(
    "name", ["", "-lead", ".hidden", "_x", "has space", "slash/y", "ü", "x" * 65, "a\n"]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidDeploymentError) as info:
        make(name)
    assert info.value.param == "name"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 2.5}, "defaults.temperature"),
        ({"temperature": -0.1}, "defaults.temperature"),
        ({"temperature": True}, "defaults.temperature"),
        ({"top_p": 1.5}, "defaults.top_p"),
        ({"top_p": float("nan")}, "defaults.top_p"),
        ({"max_tokens": 0}, "defaults.max_tokens"),
        ({"max_tokens": 1.5}, "defaults.max_tokens"),
    ],
)
def test_invalid_defaults(fields: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidDeploymentError) as info:
        SamplingDefaults(**fields)  # type: ignore[arg-type]
    assert info.value.param == param


@pytest.mark.parametrize("limit", [0, -1, True])
def test_invalid_limit(limit: int) -> None:
    with pytest.raises(InvalidDeploymentError) as info:
        make(max_tokens_limit=limit)
    assert info.value.param == "max_tokens_limit"


def test_default_max_tokens_above_limit_is_invalid() -> None:
    with pytest.raises(InvalidDeploymentError) as info:
        make(defaults=SamplingDefaults(max_tokens=20), max_tokens_limit=10)
    assert info.value.param == "defaults.max_tokens"


def test_empty_model_is_invalid() -> None:
    with pytest.raises(InvalidDeploymentError) as info:
        Deployment.new("chat", "", project_id=PROJECT)
    assert info.value.param == "model"


@pytest.mark.parametrize("project_id", ["", "x" * 41, None])
def test_project_is_required(project_id: object) -> None:
    with pytest.raises(InvalidDeploymentError) as info:
        Deployment.new("chat", MODEL, project_id=project_id)  # type: ignore[arg-type]
    assert info.value.param == "project_id"


@pytest.mark.parametrize("param", ["tokens_per_minute", "requests_per_minute"])
@pytest.mark.parametrize("value", [0, -5, True, 1.5])
def test_invalid_quota(param: str, value: object) -> None:
    with pytest.raises(InvalidDeploymentError) as info:
        make(**{param: value})  # type: ignore[arg-type]
    assert info.value.param == param


@pytest.mark.parametrize(
    ("tpm", "rpm", "effective"),
    [
        (None, None, None),  # no quota of its own: the server's default applies
        (None, 30, 30),
        (1_000, None, 6),  # 6 per 1,000 tokens per minute
        (120_000, None, 720),
        (100, None, 1),  # at least 1
        (1, None, 1),
        (1_000, 2, 2),  # an explicit value wins, even below the ratio
    ],
)
def test_effective_requests_per_minute(
    tpm: int | None, rpm: int | None, effective: int | None
) -> None:
    assert make(tokens_per_minute=tpm, requests_per_minute=rpm).effective_requests_per_minute == (
        effective
    )


def test_effective_max_tokens() -> None:
    open_ended = make()
    assert open_ended.effective_max_tokens(None) is None
    assert open_ended.effective_max_tokens(10_000) == 10_000

    with_default = make(defaults=SamplingDefaults(max_tokens=50))
    assert with_default.effective_max_tokens(None) == 50
    assert with_default.effective_max_tokens(7) == 7

    limited = make(defaults=SamplingDefaults(max_tokens=50), max_tokens_limit=100)
    assert limited.effective_max_tokens(None) == 50
    assert limited.effective_max_tokens(100) == 100
    with pytest.raises(DeploymentLimitError) as info:
        limited.effective_max_tokens(101)
    assert (info.value.deployment, info.value.requested, info.value.limit) == ("chat", 101, 100)

    # Without a default, a limit still bounds a request that names no max_tokens.
    assert make(max_tokens_limit=30).effective_max_tokens(None) == 30


def test_apply_defaults() -> None:
    deployment = make(defaults=SamplingDefaults(temperature=0.2, top_p=0.5))
    assert deployment.apply_defaults(None, None) == (0.2, 0.5)
    assert deployment.apply_defaults(0.0, None) == (0.0, 0.5)  # 0 is a value, not "omitted"
    assert deployment.apply_defaults(1.0, 0.9) == (1.0, 0.9)
    assert make().apply_defaults(None, None) == (None, None)


def test_to_dict() -> None:
    deployment = make(
        defaults=SamplingDefaults(temperature=1, max_tokens=5),
        max_tokens_limit=9,
        tokens_per_minute=1_000,
    )
    assert deployment.to_dict() == {
        "id": "chat",
        "object": "deployment",
        "project_id": PROJECT,
        "model": MODEL,
        "created_at": 1_700_000_000,
        "updated_at": 1_700_000_000,
        "status": "succeeded",
        "defaults": {"temperature": 1.0, "top_p": None, "max_tokens": 5},
        "max_tokens_limit": 9,
        "tokens_per_minute": 1_000,
        "requests_per_minute": None,
        "content_filter": DEFAULT_POLICY.to_dict(),
    }
    assert isinstance(deployment.defaults.temperature, float)


# --- content filter --------------------------------------------------------------------------


def test_a_deployment_has_the_default_policy_unless_given_one() -> None:
    assert make().content_filter is DEFAULT_POLICY
    policy = parse_policy({"prompt": {"hate": "low", "blocklists": ["words"]}})
    shown = make(content_filter=policy).to_dict()["content_filter"]
    assert shown["prompt"]["hate"] == "low" and shown["prompt"]["blocklists"] == ["words"]
    assert shown["completion"] == DEFAULT_POLICY.to_dict()["completion"]
    assert parse_policy(None) is DEFAULT_POLICY


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ("strict", "content_filter"),
        ({"prompts": {}}, "content_filter.prompts"),
        ({"prompt": {"hate": "severe"}}, "content_filter.prompt.hate"),
        ({"prompt": {"hate": 2}}, "content_filter.prompt.hate"),
        ({"completion": {"jailbreak": True}}, "content_filter.completion.jailbreak"),
        ({"prompt": {"profanity": "yes"}}, "content_filter.prompt.profanity"),
        ({"prompt": {"blocklists": ["-bad"]}}, "content_filter.prompt.blocklists"),
        ({"completion": {"blocklists": "words"}}, "content_filter.completion.blocklists"),
    ],
)
def test_an_invalid_policy_names_its_field(data: object, param: str) -> None:
    with pytest.raises(InvalidDeploymentError) as info:
        parse_policy(data)
    assert info.value.param == param


def test_content_filter_must_be_a_policy() -> None:
    with pytest.raises(InvalidDeploymentError) as info:
        make(content_filter={"prompt": {}})
    assert info.value.param == "content_filter"


# --- binding to models -----------------------------------------------------------------------


def test_name_must_not_be_a_model_id() -> None:
    check_name_free("chat", [MODEL])
    with pytest.raises(InvalidDeploymentError) as info:
        check_name_free(MODEL, [MODEL])
    assert info.value.param == "name"


def test_model_must_be_served() -> None:
    check_model_served(MODEL, [MODEL])
    with pytest.raises(InvalidDeploymentError) as info:
        check_model_served("gpt-5", [MODEL])
    assert info.value.param == "model"
    assert MODEL in info.value.message


def test_offline_model_id(tmp_path: Path) -> None:
    assert offline_model_id(MODEL) == MODEL
    gguf = tmp_path / "My Model-Q4.gguf"
    gguf.write_bytes(b"GGUF")
    assert offline_model_id(str(gguf)) == "my-model-q4"
    with pytest.raises(InvalidDeploymentError):
        offline_model_id("gpt-5")
    with pytest.raises(InvalidDeploymentError):
        offline_model_id(str(tmp_path / "missing.gguf"))
    assert offline_model_id("gpt-5", force=True) == "gpt-5"
