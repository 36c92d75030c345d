"""`ceruleum usage`: usage totals read from the database directly, as a table or as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.commands.database import fail, in_transaction
from ceruleum.gateway.usage_window import parse_bound
from ceruleum.store.usage import GROUP_FIELD, GroupBy, as_group_by, summarize_usage

_NUMBERS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "errors",
    "latency_ms_avg",
)


def show(
    project: Annotated[
        str | None, typer.Option("--project", help="Only this project (its id).")
    ] = None,
    by: Annotated[
        str, typer.Option("--by", help="Group by day, project, key, deployment or model.")
    ] = "day",
    since: Annotated[
        str | None, typer.Option(help="From this time: a date, an ISO time or unix seconds.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Up to this time (exclusive); a date includes its day.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, as the API does.")] = False,
) -> None:
    """Usage totals per project and day, key, deployment or model (the server need not run)."""
    try:
        group_by = as_group_by(by)
        start = parse_bound(since) if since else None
        end = parse_bound(until, upper=True) if until else None
    except ValueError as exc:
        fail(str(exc))

    async def action(session: AsyncSession) -> list[dict[str, Any]]:
        return await summarize_usage(
            session, group_by=group_by, project_id=project, since=start, until=end
        )

    rows = in_transaction(action)
    if as_json:
        typer.echo(json.dumps({"object": "list", "data": rows}, indent=2))
    elif rows:
        typer.echo(format_table(rows, group_by))
    else:
        typer.echo("no usage recorded in this period", err=True)


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
