"""The admin API: projects, their keys, deployments and blocklists, and the audit log, under
/admin.

Every route needs an authenticated principal (the server includes this router with the
authentication dependency); who may do what is checked in ``gateway/access.py``.
"""

from fastapi import APIRouter

from ceruleum.api.admin import audit, blocklists, deployments, keys, projects

router = APIRouter()
for _module in (projects, keys, deployments, blocklists, audit):
    router.include_router(_module.router)

__all__ = ["router"]
