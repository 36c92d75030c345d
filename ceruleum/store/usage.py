"""Usage records: written in batches by the gateway's recorder, summed for the admin API and CLI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args

from sqlalchemy import ColumnElement, Table, case, func, insert, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from ceruleum.store.tables import UsageRecord

_USAGE_TABLE = cast(Table, UsageRecord.__table__)

GroupBy = Literal["project", "key", "deployment", "day", "model"]
GROUP_BY: tuple[GroupBy, ...] = get_args(GroupBy)

# The name each grouping's value has in a summary row.
GROUP_FIELD: dict[GroupBy, str] = {
    "project": "project_id",
    "key": "key_id",
    "deployment": "deployment",
    "day": "day",
    "model": "model",
}


def as_group_by(value: str) -> GroupBy:
    """The grouping a user named; ValueError for anything else."""
    for choice in GROUP_BY:
        if value == choice:
            return choice
    raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}")


async def insert_usage(session: AsyncSession, *, records: Sequence[Mapping[str, Any]]) -> None:
    """Insert many records in one statement (executemany): the caller's transaction is the batch.
    A Core insert of the table, not of the mapped class: the ORM's bulk path costs more per row
    and nothing here needs it."""
    if records:
        await session.execute(insert(_USAGE_TABLE), list(records))


def _utc(moment: datetime) -> datetime:
    # SQLite stores the UTC wall time without a zone: bounds must be in UTC to compare as text.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _day(dialect: str) -> ColumnElement[str]:
    """The UTC calendar day of a record as 'YYYY-MM-DD', the same text on both databases."""
    if dialect == "postgresql":
        # timezone('UTC', timestamptz) is the UTC wall time, whatever the session's time zone.
        # Literals, not bound parameters: Postgres must see the same expression in SELECT and
        # GROUP BY, and $1 there and $3 here would be two different expressions to it.
        utc_time = func.timezone(literal_column("'UTC'"), UsageRecord.created_at)
        return func.to_char(utc_time, literal_column("'YYYY-MM-DD'"))
    return func.date(UsageRecord.created_at)  # SQLite keeps UTC text; date() cuts the day


def _group_column(group_by: GroupBy, dialect: str) -> ColumnElement[Any] | None:
    """The grouping besides project_id (always a grouping column), labelled 'grp'."""
    if group_by == "project":
        return None
    if group_by == "day":
        return _day(dialect).label("grp")
    if group_by == "key":
        return UsageRecord.key_id.label("grp")
    if group_by == "deployment":
        return UsageRecord.deployment.label("grp")
    return UsageRecord.model.label("grp")


async def summarize_usage(
    session: AsyncSession,
    *,
    group_by: GroupBy,
    project_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[dict[str, Any]]:
    """Totals per project and group, since inclusive, until exclusive; errors are status >= 400."""
    group = _group_column(as_group_by(group_by), session.get_bind().dialect.name)
    groups: list[ColumnElement[Any]] = [UsageRecord.project_id.expression]
    if group is not None:
        groups.append(group)
    query = (
        select(
            *groups,
            func.count().label("requests"),
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0).label("prompt"),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0).label("completion"),
            func.coalesce(func.sum(case((UsageRecord.status >= 400, 1), else_=0)), 0).label(
                "errors"
            ),
            func.avg(UsageRecord.latency_ms).label("latency"),
        )
        .group_by(*groups)
        .order_by(*groups)
    )
    if project_id is not None:
        query = query.where(UsageRecord.project_id == project_id)
    if since is not None:
        query = query.where(UsageRecord.created_at >= _utc(since))
    if until is not None:
        query = query.where(UsageRecord.created_at < _utc(until))
    rows = []
    for row in (await session.execute(query)).mappings():
        prompt, completion = int(row["prompt"]), int(row["completion"])
        summary: dict[str, Any] = {"project_id": row["project_id"]}
        if group is not None:
            summary[GROUP_FIELD[group_by]] = row["grp"]
        summary.update(
            requests=int(row["requests"]),
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            errors=int(row["errors"]),
            latency_ms_avg=round(float(row["latency"] or 0), 1),  # Postgres averages as Decimal
        )
        rows.append(summary)
    return rows
