"""`ceruleum usage`: the usage summary read from the database directly, as a table or JSON."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ceruleum.settings import Settings
from ceruleum.store import Database, database_url
from ceruleum.store.usage import GROUP_FIELD, GroupBy, summarize_usage

_NUMBERS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "errors",
    "latency_ms_avg",
)


async def read_usage(
    settings: Settings,
    *,
    group_by: GroupBy,
    project_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[dict[str, Any]]:
    """The same summary as GET /admin/usage, without a server (works while none runs)."""
    database = Database(database_url(settings.database_url, settings.data_dir))
    try:
        await database.migrate()
        async with database.session() as session:
            return await summarize_usage(
                session, group_by=group_by, project_id=project_id, since=since, until=until
            )
    finally:
        await database.close()


def format_table(rows: Sequence[dict[str, Any]], group_by: GroupBy) -> str:
    """Aligned columns: text left, numbers right; an absent key or deployment shows as '-'."""
    columns = ["project_id"]
    if group_by != "project":
        columns.append(GROUP_FIELD[group_by])
    columns.extend(_NUMBERS)
    cells = [columns] + [["-" if row[c] is None else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        parts = [
            value.rjust(width) if column in _NUMBERS else value.ljust(width)
            for column, value, width in zip(columns, line, widths, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
