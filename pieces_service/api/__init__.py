"""HTTP resources, one blueprint per resource."""
from __future__ import annotations

from . import audit, changes, hierarchy, pieces, sync

RESOURCES = (pieces, hierarchy, sync, changes, audit)


def register_blueprints(api) -> None:
    """Mount every resource module's blueprint on `api`."""
    for module in RESOURCES:
        api.register_blueprint(module.resources.blp)
