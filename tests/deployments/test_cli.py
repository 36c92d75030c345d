"""`ceruleum deployments ...` through typer's runner, on a real data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ceruleum.cli import app
from ceruleum.deployments import DeploymentStore

MODEL = "smollm2-135m-instruct"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    monkeypatch.setenv("CERULEUM_DATA_DIR", str(directory))
    return directory


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["deployments", *args])


def assert_fails(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_create_show_list_delete(data_dir: Path) -> None:
    result = run(
        "create", "chat", "--model", MODEL,
        "--temperature", "0.2", "--top-p", "0.9", "--max-tokens", "50",
        "--max-tokens-limit", "100",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == f"created deployment chat -> {MODEL}\n"
    assert (data_dir / "deployments.json").is_file()

    shown = run("show", "chat")
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.stdout)
    assert body["id"] == "chat"
    assert body["object"] == "deployment"
    assert body["model"] == MODEL
    assert body["defaults"] == {"temperature": 0.2, "top_p": 0.9, "max_tokens": 50}
    assert body["max_tokens_limit"] == 100
    assert body == DeploymentStore(data_dir / "deployments.json").get("chat").to_dict()

    assert run("create", "plain", "--model", MODEL).exit_code == 0
    listed = run("list")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == [
        f"chat\t{MODEL}\ttemperature=0.2 top_p=0.9 max_tokens=50 max_tokens_limit=100",
        f"plain\t{MODEL}\t-",
    ]

    deleted = run("delete", "chat")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout == "deleted deployment chat\n"
    assert [line.split("\t")[0] for line in run("list").stdout.splitlines()] == ["plain"]


def test_list_when_empty(data_dir: Path) -> None:
    result = run("list")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no deployments" in result.stderr
    assert not data_dir.exists()


def test_gguf_path_is_stored_as_its_model_id(data_dir: Path, tmp_path: Path) -> None:
    gguf = tmp_path / "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")
    result = run("create", "qwen", "--model", str(gguf))
    assert result.exit_code == 0, result.output
    assert json.loads(run("show", "qwen").stdout)["model"] == "qwen2.5-0.5b-instruct-q4_k_m"


def test_force_accepts_any_model(data_dir: Path) -> None:
    assert_fails(run("create", "remote", "--model", "gpt-4o"), "Unknown model 'gpt-4o'")
    result = run("create", "remote", "--model", "gpt-4o", "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(run("show", "remote").stdout)["model"] == "gpt-4o"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", ".x", "--model", MODEL], "Invalid deployment name '.x'"),
        (["create", "a b", "--model", MODEL], "Invalid deployment name 'a b'"),
        (["create", MODEL, "--model", MODEL], "is also a model id"),
        (["create", "all-minilm-l6-v2", "--model", MODEL], "is also a model id"),
        (["create", "x", "--model", MODEL, "--temperature", "3"], "defaults.temperature"),
        (["create", "x", "--model", MODEL, "--max-tokens-limit", "0"], "max_tokens_limit"),
        (
            ["create", "x", "--model", MODEL, "--max-tokens", "20", "--max-tokens-limit", "10"],
            "larger than max_tokens_limit",
        ),
        (["show", "nope"], "The deployment 'nope' does not exist."),
        (["delete", "nope"], "The deployment 'nope' does not exist."),
    ],
)
def test_errors_exit_nonzero_with_a_message(data_dir: Path, args: list[str], message: str) -> None:
    assert_fails(run(*args), message)
    assert not (data_dir / "deployments.json").exists()


def test_name_like_an_option_is_a_usage_error(data_dir: Path) -> None:
    result = run("create", "-x", "--model", MODEL)
    assert result.exit_code == 2  # click's usage error, before any of our code runs
    assert "No such option" in result.output


def test_duplicate_exits_nonzero(data_dir: Path) -> None:
    assert run("create", "chat", "--model", MODEL, "--max-tokens-limit", "5").exit_code == 0
    assert_fails(run("create", "chat", "--model", MODEL), "'chat' already exists")
    assert json.loads(run("show", "chat").stdout)["max_tokens_limit"] == 5


def test_corrupt_file_exits_nonzero_naming_it(data_dir: Path) -> None:
    data_dir.mkdir()
    path = data_dir / "deployments.json"
    path.write_text("{broken")
    for args in (["list"], ["show", "x"], ["create", "x", "--model", MODEL]):
        assert_fails(run(*args), f"{path} is unreadable")
    assert path.read_text() == "{broken"


def test_unwritable_data_dir_exits_nonzero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    # A data dir under a regular file cannot be created, even by root.
    monkeypatch.setenv("CERULEUM_DATA_DIR", str(blocker / "data"))
    assert_fails(run("create", "chat", "--model", MODEL), "error:")
