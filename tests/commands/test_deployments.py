"""`ceruleum deployments ... --project ID` on a real SQLite database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands.conftest import assert_fails, audit_events, cli, new_project, ok

MODEL = "smollm2-135m-instruct"


@pytest.fixture
def project(data_dir: Path) -> str:
    return new_project()


def test_create_show_list_delete(data_dir: Path, project: str) -> None:
    result = ok(
        "deployments", "create", "chat", "--project", project, "--model", MODEL,
        "--temperature", "0.2", "--top-p", "0.9", "--max-tokens", "50",
        "--max-tokens-limit", "100", "--tpm", "5000", "--rpm", "12",
    )  # fmt: skip
    assert result.stdout == f"created deployment chat -> {MODEL} in project {project}\n"

    body = json.loads(ok("deployments", "show", "chat", "--project", project).stdout)
    assert body["id"] == "chat"
    assert body["object"] == "deployment"
    assert body["project_id"] == project
    assert body["model"] == MODEL
    assert body["defaults"] == {"temperature": 0.2, "top_p": 0.9, "max_tokens": 50}
    assert (body["max_tokens_limit"], body["tokens_per_minute"], body["requests_per_minute"]) == (
        100,
        5000,
        12,
    )

    ok("deployments", "create", "plain", "--project", project, "--model", MODEL)
    assert ok("deployments", "list", "--project", project).stdout.splitlines() == [
        f"chat\t{MODEL}\ttemperature=0.2 top_p=0.9 max_tokens=50 max_tokens_limit=100 "
        "tpm=5000 rpm=12",
        f"plain\t{MODEL}\ttpm=120000",  # the server's default quota, written down
    ]

    assert ok("deployments", "delete", "chat", "--project", project).stdout == (
        "deleted deployment chat\n"
    )
    listed = ok("deployments", "list", "--project", project).stdout.splitlines()
    assert [line.split("\t")[0] for line in listed] == ["plain"]

    events = audit_events(data_dir)
    assert [(e["action"], e["actor"]) for e in events] == [
        ("project.create", "cli"),
        ("deployment.create", "cli"),
        ("deployment.create", "cli"),
        ("deployment.delete", "cli"),
    ]
    assert events[1]["after"] == body
    assert events[3]["before"] == body and events[3]["after"] is None


def test_deployments_belong_to_their_project(data_dir: Path, project: str) -> None:
    other = new_project("beta")
    ok("deployments", "create", "chat", "--project", project, "--model", MODEL)
    ok("deployments", "create", "chat", "--project", other, "--model", MODEL, "--tpm", "7")
    assert_fails(
        cli("deployments", "create", "chat", "--project", project, "--model", MODEL),
        "'chat' already exists",
    )
    shown = json.loads(ok("deployments", "show", "chat", "--project", other).stdout)
    assert (shown["project_id"], shown["tokens_per_minute"]) == (other, 7)
    ok("deployments", "delete", "chat", "--project", other)
    assert json.loads(ok("deployments", "show", "chat", "--project", project).stdout)


def test_list_when_empty(data_dir: Path, project: str) -> None:
    result = ok("deployments", "list", "--project", project)
    assert (result.stdout, result.stderr) == ("", "no deployments\n")


def test_gguf_path_is_stored_as_its_model_id(project: str, tmp_path: Path) -> None:
    gguf = tmp_path / "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")
    ok("deployments", "create", "qwen", "--project", project, "--model", str(gguf))
    shown = json.loads(ok("deployments", "show", "qwen", "--project", project).stdout)
    assert shown["model"] == "qwen2.5-0.5b-instruct-q4_k_m"


def test_force_accepts_any_model(project: str) -> None:
    create = ("deployments", "create", "remote", "--project", project, "--model", "gpt-4o")
    assert_fails(cli(*create), "Unknown model 'gpt-4o'")
    ok(*create, "--force")
    shown = json.loads(ok("deployments", "show", "remote", "--project", project).stdout)
    assert shown["model"] == "gpt-4o"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", ".x", "--model", MODEL], "Invalid deployment name '.x'"),
        (["create", "a b", "--model", MODEL], "Invalid deployment name 'a b'"),
        (["create", MODEL, "--model", MODEL], "is also a model id"),
        (["create", "all-minilm-l6-v2", "--model", MODEL], "is also a model id"),
        (["create", "x", "--model", MODEL, "--temperature", "3"], "defaults.temperature"),
        (["create", "x", "--model", MODEL, "--max-tokens-limit", "0"], "max_tokens_limit"),
        (["create", "x", "--model", MODEL, "--tpm", "0"], "tokens_per_minute"),
        (["create", "x", "--model", MODEL, "--rpm", "-1"], "requests_per_minute"),
        (
            ["create", "x", "--model", MODEL, "--max-tokens", "20", "--max-tokens-limit", "10"],
            "larger than max_tokens_limit",
        ),
        (["show", "nope"], "The deployment 'nope' does not exist."),
        (["delete", "nope"], "The deployment 'nope' does not exist."),
    ],
)
def test_errors_exit_nonzero_with_a_message(
    data_dir: Path, project: str, args: list[str], message: str
) -> None:
    assert_fails(cli("deployments", *args, "--project", project), message)
    assert ok("deployments", "list", "--project", project).stdout == ""
    assert len(audit_events(data_dir)) == 1  # only the project's creation


@pytest.mark.parametrize("command", ["list", "show", "delete", "create"])
def test_unknown_project(data_dir: Path, command: str) -> None:
    args = {"list": [], "show": ["x"], "delete": ["x"], "create": ["x", "--model", MODEL]}
    result = cli("deployments", command, *args[command], "--project", "proj_missing")
    assert_fails(result, "The project 'proj_missing' does not exist.")


def test_project_is_required(data_dir: Path) -> None:
    result = cli("deployments", "list")
    assert result.exit_code == 2
    assert "--project" in result.output


def test_name_like_an_option_is_a_usage_error(project: str) -> None:
    result = cli("deployments", "create", "-x", "--project", project, "--model", MODEL)
    assert result.exit_code == 2  # click's usage error, before any of our code runs
    assert "No such option" in result.output
