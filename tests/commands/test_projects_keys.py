"""`ceruleum projects ...` and `ceruleum keys ...` on a real SQLite database."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ceruleum.gateway.keys import key_prefix
from tests.commands.conftest import assert_fails, audit_events, cli, new_project, ok


def test_projects_create_list_delete(data_dir: Path) -> None:
    result = ok("projects", "create", "alpha")
    match = re.fullmatch(r"created project alpha with id (proj_[0-9a-f]{24})\n", result.stdout)
    assert match is not None, result.stdout
    project_id = match.group(1)
    listed = ok("projects", "list").stdout.splitlines()
    assert len(listed) == 1
    pid, name, created = listed[0].split("\t")
    assert (pid, name) == (project_id, "alpha")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)

    deleted = ok("projects", "delete", project_id)
    assert deleted.stdout.startswith(f"deleted project alpha ({project_id})")
    assert ok("projects", "list").stdout == ""
    assert [(e["action"], e["actor"]) for e in audit_events(data_dir)] == [
        ("project.create", "cli"),
        ("project.delete", "cli"),
    ]


def test_project_errors(data_dir: Path) -> None:
    new_project("alpha")
    assert_fails(cli("projects", "create", "alpha"), "'alpha' already exists")
    assert_fails(cli("projects", "create", "no spaces"), "A project name is")
    assert_fails(cli("projects", "delete", "proj_missing"), "'proj_missing' does not exist")
    assert len(audit_events(data_dir)) == 1


def test_empty_lists_say_so_on_stderr(data_dir: Path) -> None:
    result = ok("projects", "list")
    assert (result.stdout, result.stderr) == ("", "no projects\n")
    project_id = new_project()
    result = ok("keys", "list", "--project", project_id)
    assert (result.stdout, result.stderr) == ("", "no keys\n")


def test_key_create_prints_the_secret_once_alone_on_stdout(data_dir: Path) -> None:
    project_id = new_project()
    result = ok(
        "keys", "create", "--project", project_id, "--name", "ci", "--role", "member",
        "--expires-in-days", "30", "--allow-deployment", "chat", "--allow-deployment", "embed",
        "--tpm", "1000", "--rpm", "10",
    )  # fmt: skip
    secret = result.stdout.strip()
    assert result.stdout == secret + "\n"
    prefix = key_prefix(secret)
    assert prefix is not None
    assert "shown only this once" in result.stderr
    assert secret not in result.stderr

    [line] = ok("keys", "list", "--project", project_id).stdout.splitlines()
    key_id, name, role, listed_prefix, status, expiry = line.split("\t")
    assert (name, role, listed_prefix, status) == ("ci", "member", prefix, "active")
    assert expiry.startswith("expires 20")
    assert secret not in line

    [event] = audit_events(data_dir)[1:]
    assert (event["action"], event["actor"], event["target_id"]) == ("key.create", "cli", key_id)
    after = event["after"]
    assert after["allowed_deployments"] == ["chat", "embed"]
    assert (after["tokens_per_minute"], after["requests_per_minute"]) == (1000, 10)
    assert secret not in json.dumps(audit_events(data_dir))


def test_key_revoke_is_idempotent(data_dir: Path) -> None:
    project_id = new_project()
    ok("keys", "create", "--project", project_id, "--name", "ci", "--role", "reader")
    key_id = ok("keys", "list", "--project", project_id).stdout.split("\t")[0]
    assert ok("keys", "revoke", key_id).stdout.startswith(f"revoked key {key_id} (ci)")
    again = ok("keys", "revoke", key_id)
    assert again.stdout.startswith(f"key {key_id} was already revoked at ")
    assert ok("keys", "list", "--project", project_id).stdout.split("\t")[4] == "revoked"
    revoke = audit_events(data_dir)[2]
    assert revoke["action"] == "key.revoke"
    assert revoke["before"]["revoked_at"] is None and revoke["after"]["revoked_at"] is not None


def test_key_errors(data_dir: Path) -> None:
    project_id = new_project()
    base = ("keys", "create", "--project", project_id, "--name", "ci")
    assert_fails(cli(*base, "--role", "admin"), "role is one of owner, member, reader")
    assert_fails(cli(*base, "--role", "owner", "--tpm", "0"), "'tokens_per_minute'")
    assert_fails(cli(*base, "--role", "owner", "--expires-in-days", "0"), "--expires-in-days")
    assert_fails(
        cli("keys", "create", "--project", "proj_missing", "--name", "x", "--role", "owner"),
        "The project 'proj_missing' does not exist.",
    )
    assert_fails(cli("keys", "list", "--project", "proj_missing"), "'proj_missing' does not exist")
    assert_fails(cli("keys", "revoke", "key_missing"), "The API key 'key_missing' does not exist.")
    assert ok("keys", "list", "--project", project_id).stdout == ""
    assert len(audit_events(data_dir)) == 1


def test_missing_required_options_are_usage_errors(data_dir: Path) -> None:
    result = cli("keys", "create", "--name", "ci", "--role", "owner")
    assert result.exit_code == 2
    assert "--project" in result.output


def test_unusable_data_dir_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    # A data dir under a regular file cannot be created, even by root.
    monkeypatch.setenv("CERULEUM_DATA_DIR", str(blocker / "data"))
    monkeypatch.delenv("CERULEUM_DATABASE_URL", raising=False)
    assert_fails(cli("projects", "list"), "error:")
