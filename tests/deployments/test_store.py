"""DeploymentStore on the real file system, and the Deployment rules it stores."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from ceruleum.deployments import (
    Deployment,
    DeploymentExistsError,
    DeploymentLimitError,
    DeploymentNotFoundError,
    DeploymentStore,
    DeploymentStoreCorruptError,
    InvalidDeploymentError,
    SamplingDefaults,
    check_model_served,
    check_name_free,
    offline_model_id,
)

MODEL = "smollm2-135m-instruct"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    # A data dir that does not exist yet: the first write creates it.
    return tmp_path / "data" / "deployments.json"


@pytest.fixture
def store(path: Path) -> DeploymentStore:
    return DeploymentStore(path)


def make(
    name: str = "chat",
    *,
    defaults: SamplingDefaults | None = None,
    max_tokens_limit: int | None = None,
) -> Deployment:
    return Deployment.new(
        name, MODEL, defaults=defaults, max_tokens_limit=max_tokens_limit, now=1_700_000_000
    )


# --- CRUD ------------------------------------------------------------------------------------


def test_empty_store_lists_nothing_and_writes_nothing(store: DeploymentStore, path: Path) -> None:
    assert store.list() == []
    assert not path.parent.exists()


def test_create_get_list(store: DeploymentStore, path: Path) -> None:
    created = store.create(make("b-chat", defaults=SamplingDefaults(temperature=0.2)))
    store.create(make("a-chat"))
    assert store.get("b-chat") == created
    assert [d.name for d in store.list()] == ["a-chat", "b-chat"]
    on_disk = json.loads(path.read_text())
    assert on_disk["version"] == 1
    assert [r["name"] for r in on_disk["deployments"]] == ["a-chat", "b-chat"]
    assert on_disk["deployments"][1]["defaults"] == {
        "temperature": 0.2,
        "top_p": None,
        "max_tokens": None,
    }


def test_create_duplicate_is_refused_and_keeps_the_first(store: DeploymentStore) -> None:
    store.create(make("chat", max_tokens_limit=10))
    with pytest.raises(DeploymentExistsError, match="'chat' already exists"):
        store.create(make("chat"))
    assert store.get("chat").max_tokens_limit == 10


def test_get_unknown(store: DeploymentStore) -> None:
    with pytest.raises(DeploymentNotFoundError) as info:
        store.get("nope")
    assert info.value.name == "nope"


def test_update_changes_fields_and_updated_at(store: DeploymentStore) -> None:
    store.create(make("chat"))
    updated = store.update(
        "chat", defaults=SamplingDefaults(top_p=0.9, max_tokens=50), max_tokens_limit=100
    )
    assert updated.defaults == SamplingDefaults(top_p=0.9, max_tokens=50)
    assert updated.max_tokens_limit == 100
    assert updated.created_at == 1_700_000_000
    assert updated.updated_at > updated.created_at
    assert store.get("chat") == updated
    assert DeploymentStore(store.path).get("chat") == updated
    cleared = store.update("chat", max_tokens_limit=None)
    assert cleared.max_tokens_limit is None
    assert cleared.defaults == updated.defaults


def test_update_without_changes_does_not_write(store: DeploymentStore, path: Path) -> None:
    created = store.create(make("chat"))
    before = path.stat()
    assert store.update("chat") == created
    assert path.stat().st_ino == before.st_ino


def test_update_unknown(store: DeploymentStore) -> None:
    with pytest.raises(DeploymentNotFoundError):
        store.update("nope", max_tokens_limit=5)


def test_invalid_update_leaves_the_file_alone(store: DeploymentStore, path: Path) -> None:
    store.create(make("chat", defaults=SamplingDefaults(max_tokens=100)))
    before = path.read_bytes()
    with pytest.raises(InvalidDeploymentError) as info:
        store.update("chat", max_tokens_limit=50)
    assert info.value.param == "defaults.max_tokens"
    assert path.read_bytes() == before


def test_delete(store: DeploymentStore) -> None:
    store.create(make("chat"))
    store.delete("chat")
    assert store.list() == []
    with pytest.raises(DeploymentNotFoundError):
        store.get("chat")
    with pytest.raises(DeploymentNotFoundError):
        store.delete("chat")


def test_writes_leave_no_temporary_files(store: DeploymentStore, path: Path) -> None:
    store.create(make("a"))
    store.update("a", max_tokens_limit=3)
    store.create(make("b"))
    store.delete("a")
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "deployments.json",
        "deployments.json.lock",
    ]


# --- two stores on one file: what the CLI and a running server do ---------------------------


def test_a_second_store_sees_writes_without_restart(path: Path) -> None:
    server, cli = DeploymentStore(path), DeploymentStore(path)
    assert server.list() == []  # cached: empty
    cli.create(make("from-cli"))
    assert [d.name for d in server.list()] == ["from-cli"]
    cli.update("from-cli", max_tokens_limit=7)
    assert server.get("from-cli").max_tokens_limit == 7
    server.delete("from-cli")
    with pytest.raises(DeploymentNotFoundError):
        cli.get("from-cli")


def test_same_size_rewrite_is_noticed(path: Path) -> None:
    """Same length and maybe the same mtime tick: the new inode from os.replace tells them apart."""
    reader, writer = DeploymentStore(path), DeploymentStore(path)
    writer.create(make("chat", max_tokens_limit=1))
    assert reader.get("chat").max_tokens_limit == 1
    size = path.stat().st_size
    writer.update("chat", max_tokens_limit=2)
    assert path.stat().st_size == size
    assert reader.get("chat").max_tokens_limit == 2


def test_writer_merges_with_changes_it_has_not_read(path: Path) -> None:
    first, second = DeploymentStore(path), DeploymentStore(path)
    assert first.list() == [] and second.list() == []
    first.create(make("one"))
    second.create(make("two"))  # must not overwrite 'one' with its stale cache
    assert [d.name for d in first.list()] == ["one", "two"]


def test_concurrent_writers_lose_nothing(path: Path) -> None:
    stores = [DeploymentStore(path) for _ in range(4)]

    def create_many(index: int) -> None:
        for n in range(10):
            stores[index].create(make(f"s{index}-{n}"))

    threads = [threading.Thread(target=create_many, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(DeploymentStore(path).list()) == 40


# --- a corrupt file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[]", '"version": 1'),
        ('{"version": 2, "deployments": []}', '"version": 1'),
        ('{"version": 1, "deployments": [42]}', "entry 0 is invalid"),
        ('{"version": 1, "deployments": [{"name": "x"}]}', "entry 0 is invalid"),
        (
            '{"version": 1, "deployments": [{"name": "-x", "model": "m", '
            '"created_at": 1, "updated_at": 1}]}',
            "entry 0 is invalid",
        ),
    ],
)
def test_corrupt_file_is_a_typed_error_naming_the_path(
    store: DeploymentStore, path: Path, content: str, reason: str
) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(DeploymentStoreCorruptError) as info:
        store.list()
    assert info.value.path == path
    assert reason in info.value.reason
    assert str(path) in str(info.value)


def test_corrupt_file_is_never_overwritten_and_recovery_is_seen(
    store: DeploymentStore, path: Path
) -> None:
    store.create(make("chat"))
    path.write_text("{oops")
    with pytest.raises(DeploymentStoreCorruptError):
        store.get("chat")
    with pytest.raises(DeploymentStoreCorruptError):
        store.create(make("other"))
    assert path.read_text() == "{oops"
    os.remove(path)
    assert store.list() == []


def test_duplicate_names_in_file_are_corrupt(store: DeploymentStore, path: Path) -> None:
    store.create(make("chat"))
    data = json.loads(path.read_text())
    data["deployments"].append(data["deployments"][0])
    path.write_text(json.dumps(data))
    with pytest.raises(DeploymentStoreCorruptError, match="two entries are named 'chat'"):
        store.list()


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
        Deployment.new("chat", "")
    assert info.value.param == "model"


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
    deployment = make(defaults=SamplingDefaults(temperature=1, max_tokens=5), max_tokens_limit=9)
    assert deployment.to_dict() == {
        "id": "chat",
        "object": "deployment",
        "model": MODEL,
        "created_at": 1_700_000_000,
        "updated_at": 1_700_000_000,
        "status": "succeeded",
        "defaults": {"temperature": 1.0, "top_p": None, "max_tokens": 5},
        "max_tokens_limit": 9,
    }
    assert isinstance(deployment.defaults.temperature, float)


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
