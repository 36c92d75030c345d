"""Who is calling and what they may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["owner", "member", "reader"]
ROLES: tuple[Role, ...] = ("owner", "member", "reader")
ADMIN_PROJECT = "platform"  # usage of the platform admin key is recorded under this name


@dataclass(frozen=True, slots=True)
class Principal:
    """The platform admin (``key_id`` None), or a project's API key."""

    key_id: str | None
    project_id: str
    role: Role | Literal["admin"]
    allowed_deployments: tuple[str, ...] | None = None
    tokens_per_minute: int | None = None
    requests_per_minute: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        return "admin" if self.key_id is None else self.key_id

    def can_infer(self) -> bool:
        return self.role in ("admin", "owner", "member")

    def can_use(self, deployment: str) -> bool:
        return self.allowed_deployments is None or deployment in self.allowed_deployments

    def sees_project(self, project_id: str) -> bool:
        """Other projects' objects do not exist for a key: 404, not 403."""
        return self.is_admin or project_id == self.project_id

    def can_manage(self, project_id: str) -> bool:
        return self.is_admin or (self.role == "owner" and project_id == self.project_id)


def admin_principal() -> Principal:
    return Principal(key_id=None, project_id=ADMIN_PROJECT, role="admin")
