"""BlocklistLookup on SQLite (the sync read path) and PostgreSQL: the compiled blocklists of a
project by name, cached, recompiled only when a list changed."""

from __future__ import annotations

from ceruleum.deployments.blocklist_lookup import BlocklistLookup
from ceruleum.gateway import admin_blocklists as actions
from ceruleum.store import Database
from ceruleum.store.blocklists import NewItem
from tests.store.test_admin_actions import new_project
from tests.store.test_blocklists import make_blocklist


async def add(database: Database, project_id: str, name: str, pattern: str) -> None:
    async with database.session() as session:
        await actions.add_items(
            session, actor="admin", project_id=project_id, name=name, items=[NewItem(pattern)]
        )


async def test_finds_the_projects_lists_by_name_in_order(database: Database) -> None:
    a = await new_project(database, "alpha")
    b = await new_project(database, "beta")
    words_id = await make_blocklist(
        database, a, "words", [NewItem("Acme Corp"), NewItem(r"rival-\d+", is_regex=True)]
    )
    await make_blocklist(database, a, "empty")
    await make_blocklist(database, b, "theirs", [NewItem("beta only")])
    lookup = BlocklistLookup(database, ttl_s=3600)
    [cached_words] = await lookup.get(project_id=a, names=["words"])

    # Cached and fetched names together, still in the order asked for.
    found = await lookup.get(project_id=a, names=["empty", "missing", "words", "theirs"])
    assert [(c.name, c.id) for c in found][1] == ("words", words_id)
    assert [c.name for c in found] == ["empty", "words"]  # missing and foreign names skipped
    empty, words = found
    assert words is cached_words
    assert words.matches("we buy from ACME corp") and words.matches("see rival-42")
    assert not words.matches("acme corporation") and not empty.matches("anything")
    assert await lookup.get(project_id=a, names=[]) == []
    [theirs] = await lookup.get(project_id=b, names=["theirs", "words"])
    assert theirs.matches("beta only")


async def test_cached_until_forgotten_or_expired(database: Database) -> None:
    project_id = await new_project(database)
    await make_blocklist(database, project_id, "words", [NewItem("first")])
    lookup = BlocklistLookup(database, ttl_s=3600)
    [before] = await lookup.get(project_id=project_id, names=["words", "later"])
    await add(database, project_id, "words", "second")
    await make_blocklist(database, project_id, "later")
    # Within the time to live: the cached list, and the name still missing.
    [cached] = await lookup.get(project_id=project_id, names=["words", "later"])
    assert cached is before and not cached.matches("second")
    lookup.forget()
    after = await lookup.get(project_id=project_id, names=["words", "later"])
    assert [c.name for c in after] == ["words", "later"]
    assert after[0] is not before and after[0].matches("second")
    # Forgotten but unchanged in the database: checked again, not compiled again.
    lookup.forget()
    again = await lookup.get(project_id=project_id, names=["words", "later"])
    assert again[0] is after[0] and again[1] is after[1]


async def test_recompiles_only_what_changed(database: Database) -> None:
    project_id = await new_project(database)
    await make_blocklist(database, project_id, "words", [NewItem("first")])
    await make_blocklist(database, project_id, "stable", [NewItem("steady")])
    lookup = BlocklistLookup(database, ttl_s=0)  # every call checks the database
    words, stable = await lookup.get(project_id=project_id, names=["words", "stable"])
    again = await lookup.get(project_id=project_id, names=["words", "stable"])
    assert again[0] is words and again[1] is stable  # unchanged: not recompiled
    await add(database, project_id, "words", "second")
    changed, same = await lookup.get(project_id=project_id, names=["words", "stable"])
    assert changed is not words and changed.matches("second") and same is stable
    async with database.session() as session:
        await actions.delete_blocklist(session, actor="admin", project_id=project_id, name="words")
    assert await lookup.get(project_id=project_id, names=["words", "stable"]) == [stable]
