"""`ceruleum blocklists ... --project ID` and `deployments --content-filter` on a real SQLite
database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands.conftest import assert_fails, audit_events, cli, new_project, ok

MODEL = "smollm2-135m-instruct"


@pytest.fixture
def project(data_dir: Path) -> str:
    return new_project()


def item_id(result_stdout: str) -> str:
    # "added item bli_... to blocklist NAME"
    return result_stdout.split()[2]


def test_create_add_show_list_remove_delete(data_dir: Path, project: str) -> None:
    created = ok("blocklists", "create", "words", "--project", project, "--description", "Rivals")
    assert created.stdout.startswith("created blocklist words (bl_")
    assert created.stdout.endswith(f") in project {project}\n")
    term = item_id(ok("blocklists", "add-item", "words", "Acme Corp", "--project", project).stdout)
    pattern = item_id(
        ok("blocklists", "add-item", "words", r"rival-\d+", "--regex", "--project", project).stdout
    )
    assert term.startswith("bli_") and pattern.startswith("bli_")

    body = json.loads(ok("blocklists", "show", "words", "--project", project).stdout)
    assert (body["id"], body["object"], body["project_id"]) == ("words", "blocklist", project)
    assert (body["description"], body["item_count"]) == ("Rivals", 2)
    assert [(i["id"], i["pattern"], i["is_regex"]) for i in body["items"]] == [
        (term, "Acme Corp", False),
        (pattern, r"rival-\d+", True),
    ]

    ok("blocklists", "create", "empty", "--project", project)
    assert ok("blocklists", "list", "--project", project).stdout.splitlines() == [
        "empty\t0 items\t-",
        "words\t2 items\tRivals",
    ]
    assert ok("blocklists", "update", "words", "--project", project).stdout == (
        "updated blocklist words\n"
    )
    assert ok("blocklists", "remove-item", "words", term, "--project", project).stdout == (
        f"removed item {term} from blocklist words\n"
    )
    body = json.loads(ok("blocklists", "show", "words", "--project", project).stdout)
    assert (body["description"], [i["id"] for i in body["items"]]) == (None, [pattern])
    assert ok("blocklists", "delete", "words", "--project", project).stdout == (
        "deleted blocklist words\n"
    )
    assert_fails(
        cli("blocklists", "show", "words", "--project", project),
        "The blocklist 'words' does not exist.",
    )
    assert [(e["action"], e["actor"]) for e in audit_events(data_dir)] == [
        ("project.create", "cli"),
        ("blocklist.create", "cli"),
        ("blocklist.item.add", "cli"),
        ("blocklist.item.add", "cli"),
        ("blocklist.create", "cli"),
        ("blocklist.update", "cli"),
        ("blocklist.item.remove", "cli"),
        ("blocklist.delete", "cli"),
    ]


def test_list_when_empty(project: str) -> None:
    result = ok("blocklists", "list", "--project", project)
    assert (result.stdout, result.stderr) == ("", "no blocklists\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "a b"], "A blocklist name is 1 to 64"),
        (["create", "words", "--description", "d" * 513], "at most 512 characters"),
        (["add-item", "words", "(", "--regex"], "Invalid regular expression"),
        (["add-item", "words", "x" * 129], "A term may be at most 128 characters"),
        (["add-item", "words", " "], "non-empty pattern"),
        (["add-item", "nope", "x"], "The blocklist 'nope' does not exist."),
        (["remove-item", "words", "bli_missing"], "'bli_missing' does not exist."),
        (["delete", "nope"], "The blocklist 'nope' does not exist."),
        (["create", "words"], "'words' already exists"),
    ],
)
def test_errors_exit_nonzero_with_a_message(
    data_dir: Path, project: str, args: list[str], message: str
) -> None:
    ok("blocklists", "create", "words", "--project", project)
    assert_fails(cli("blocklists", *args, "--project", project), message)
    assert len(audit_events(data_dir)) == 2  # the project and the blocklist


@pytest.mark.parametrize("command", ["list", "show", "create", "delete", "add-item"])
def test_unknown_project(data_dir: Path, command: str) -> None:
    args = {"add-item": ["words", "x"], "list": []}.get(command, ["words"])
    result = cli("blocklists", command, *args, "--project", "proj_missing")
    assert_fails(result, "The project 'proj_missing' does not exist.")


# --- deployments --content-filter ------------------------------------------------------------


def test_deployments_attach_blocklists_by_policy(data_dir: Path, project: str) -> None:
    ok("blocklists", "create", "words", "--project", project)
    policy = {"prompt": {"hate": "low", "blocklists": ["words"]}}
    ok("deployments", "create", "chat", "--project", project, "--model", MODEL,
       "--content-filter", json.dumps(policy))  # fmt: skip
    shown = json.loads(ok("deployments", "show", "chat", "--project", project).stdout)
    assert shown["content_filter"]["prompt"]["hate"] == "low"
    assert shown["content_filter"]["prompt"]["blocklists"] == ["words"]
    assert shown["content_filter"]["completion"]["blocklists"] == []

    assert_fails(
        cli("blocklists", "delete", "words", "--project", project),
        "attached to the deployment 'chat'",
    )
    completion_only = json.dumps({"completion": {"blocklists": ["words"], "violence": "off"}})
    assert (
        ok(
            "deployments",
            "update",
            "chat",
            "--project",
            project,
            "--content-filter",
            completion_only,
        ).stdout
        == "updated deployment chat\n"
    )
    shown = json.loads(ok("deployments", "show", "chat", "--project", project).stdout)
    # The whole policy was replaced: the prompt side is back to the defaults.
    assert shown["content_filter"]["prompt"]["hate"] == "medium"
    assert shown["content_filter"]["prompt"]["blocklists"] == []
    assert shown["content_filter"]["completion"]["violence"] == "off"

    ok("deployments", "update", "chat", "--project", project, "--content-filter", "null",
       "--temperature", "0.4", "--tpm", "900")  # fmt: skip
    shown = json.loads(ok("deployments", "show", "chat", "--project", project).stdout)
    assert shown["content_filter"]["completion"]["blocklists"] == []
    assert (shown["defaults"]["temperature"], shown["tokens_per_minute"]) == (0.4, 900)
    ok("blocklists", "delete", "words", "--project", project)
    updates = [e for e in audit_events(data_dir) if e["action"] == "deployment.update"]
    assert [e["actor"] for e in updates] == ["cli", "cli"]
    assert updates[0]["after"]["content_filter"]["completion"]["blocklists"] == ["words"]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("{not json", "--content-filter is not valid JSON"),
        ('{"prompt": {"hate": "severe"}}', "'content_filter.prompt.hate' must be one of"),
        ('{"prompt": {"colour": "low"}}', "Unknown field 'content_filter.prompt.colour'"),
        ('{"prompt": {"blocklists": ["nope"]}}', "The blocklist 'nope' does not exist"),
        ("[]", "'content_filter' must be an object"),
    ],
)
def test_bad_content_filter_fails(data_dir: Path, project: str, policy: str, message: str) -> None:
    create = ("deployments", "create", "chat", "--project", project, "--model", MODEL)
    assert_fails(cli(*create, "--content-filter", policy), message)
    ok(*create)
    assert_fails(
        cli("deployments", "update", "chat", "--project", project, "--content-filter", policy),
        message,
    )
    shown = json.loads(ok("deployments", "show", "chat", "--project", project).stdout)
    assert shown["content_filter"]["prompt"]["hate"] == "medium"


def test_update_unknown_deployment(project: str) -> None:
    assert_fails(
        cli("deployments", "update", "nope", "--project", project, "--tpm", "5"),
        "The deployment 'nope' does not exist.",
    )
