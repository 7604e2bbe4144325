"""Demo data for local runs: three fixed tenants, 10,000 pieces, some of them soft-deleted.
Loaded by `make run` and `make demo-data` (`python -m devtools demo-data`).

Every GUID is derived from the tenant and the row's position (`demo_guid`), so the demo data
is the same on every machine and docs/running.md can name rows. `load(url)` goes through the
service's own code: the rows are written by `domain.sync.sync_batch` (the sync endpoints'
rules, with the body schemas validating every item) in one transaction per tenant, and
the deletions by `domain.cascade.soft_delete`, each in its own transaction, oldest first.
A tenant whose first project exists is left alone, so running it again is a no-op.

Each tenant has `projects` projects; each project 5 components (window types); each
component 25 assemblies (windows); each assembly 8 pieces (the cut bars of one window).
The soft-deleted rows follow the cascade rules of SPEC §5 (see `DELETIONS`).
"""
from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy.engine import URL

from pieces_service import create_app, db
from pieces_service.api.sync.schemas import BATCH_SCHEMAS
from pieces_service.auth import Principal, Role
from pieces_service.catalogue import LEVELS
from pieces_service.config import Config, JWTSettings
from pieces_service.dao import ownership
from pieces_service.domain import cascade, sync
from pieces_service.migrate import connect

COMPONENTS_PER_PROJECT = 5
ASSEMBLIES_PER_COMPONENT = 25
PIECES_PER_ASSEMBLY = 8
# Written by the loader as the actor of the demo deletes in the audit trail.
DEMO_ACTOR = "demo-data"
# Serialises two concurrent loads (two `make run`s starting at once).
_LOCK_KEY = 0x44454D4F  # "DEMO"


@dataclass(frozen=True)
class DemoTenant:
    """One demo company and the size of its data."""

    company_guid: uuid.UUID
    name: str
    code: str  # prefix of its project codes, e.g. NF-1001
    projects: int
    material: str

    @property
    def pieces(self) -> int:
        return (self.projects * COMPONENTS_PER_PROJECT * ASSEMBLIES_PER_COMPONENT
                * PIECES_PER_ASSEMBLY)


TENANTS = (
    DemoTenant(uuid.UUID("d1000000-0000-4000-8000-000000000001"),
               "Nordfenster GmbH", "NF", 5, "PVC"),
    DemoTenant(uuid.UUID("d2000000-0000-4000-8000-000000000002"),
               "Alpine Glazing AG", "AG", 3, "ALU"),
    DemoTenant(uuid.UUID("d3000000-0000-4000-8000-000000000003"),
               "Lakeside Doors Ltd", "LD", 2, "PVC"),
)
# The tenant whose token `make run` prints.
DEFAULT_TENANT = TENANTS[0]


def demo_guid(tenant: DemoTenant, *position: int) -> uuid.UUID:
    """The GUID of the demo row at `position` (project, component, assembly, piece numbers,
    1-based; give as many as the level needs)."""
    path = "".join(f"/{n}" for n in position)
    return uuid.UUID(hashlib.md5(f"pieces-demo:{tenant.company_guid}{path}".encode()).hexdigest())


@dataclass(frozen=True)
class Deletion:
    """A soft delete in the demo data: the row at `position` of tenant number `tenant`
    (0-based) and its active descendants, through the service's cascade."""

    tenant: int
    position: tuple[int, ...]

    @property
    def level(self) -> str:
        return tuple(LEVELS)[len(self.position) - 1]  # one position number per level


# Applied in this order, each in a transaction of its own (so each has its own deleted_at).
# Tenant 2's piece (2, 4, 1, 1) is deleted on its own before its component is, so restoring
# that component leaves it deleted (SPEC §5).
DELETIONS = (
    Deletion(1, (2, 4, 1, 1)),
    Deletion(0, (1, 1, 1, 8)),
    Deletion(0, (1, 1, 2, 8)),
    Deletion(0, (1, 1, 3, 8)),
    Deletion(0, (1, 2, 7, 5)),
    Deletion(0, (2, 1, 1, 7)),
    Deletion(2, (1, 1, 1, 7)),
    Deletion(2, (1, 1, 2, 7)),
    Deletion(2, (1, 3, 9, 2)),
    Deletion(1, (2, 4)),
    Deletion(0, (1, 2, 3)),
)

# Per tenant: projects, components, assemblies, pieces, active pieces (docs/running.md).
EXPECTED_COUNTS = {
    TENANTS[0].company_guid: (5, 25, 625, 5000, 4987),
    TENANTS[1].company_guid: (3, 15, 375, 3000, 2800),
    TENANTS[2].company_guid: (2, 10, 250, 2000, 1997),
}

_PROJECT_NAMES = ["Harbour View Apartments", "St. Anna School Extension", "Mill Lane Terraces",
                  "Riverside Offices", "Kessler Family Home"]
_CLIENTS = ["Harbour Living AG", "City of Bergdorf", "Mill Lane Housing", "Riverside Estates",
            "Kessler"]
_COMPONENT_NAMES = ["Tilt & turn window", "Fixed light", "Balcony door", "Double casement",
                    "Top-hung window"]
_HARDWARE = ["Tilt&turn RH, concealed hinges", None, "3-point door lock, handle inside",
             "Tilt&turn LH + RH, mullion", "Top-hung, friction stay"]

# The 8 bars of one window: a frame cut at 45° (welded), a sash top and bottom, a mullion
# and a glazing bead cut at 90°. `along` says whether a bar runs along the window's width
# (W) or height (H); `shorten` is taken off that dimension.
@dataclass(frozen=True)
class Bar:
    k: int
    profile_type: str
    profile_type_ra: str
    profile_code: str
    profile_name: str
    profile_width: int
    profile_height: int
    orientation: str
    along: str
    shorten: int
    angle: int
    operations: str
    reinforcement_code: str | None


BARS = (
    Bar(1, "frame", "R", "FR-7001", "Frame 70 mm", 70, 70, "top", "W", 0, 45,
        "CUT;WELD;CLEAN", "ST-1.5"),
    Bar(2, "frame", "R", "FR-7001", "Frame 70 mm", 70, 70, "bottom", "W", 0, 45,
        "CUT;DRAIN;WELD;CLEAN", "ST-1.5"),
    Bar(3, "frame", "R", "FR-7001", "Frame 70 mm", 70, 70, "left", "H", 0, 45,
        "CUT;WELD;CLEAN", "ST-1.5"),
    Bar(4, "frame", "R", "FR-7001", "Frame 70 mm", 70, 70, "right", "H", 0, 45,
        "CUT;WELD;CLEAN", "ST-1.5"),
    Bar(5, "sash", "F", "SA-7002", "Sash 78 mm", 78, 78, "top", "W", 96, 45,
        "CUT;WELD;CLEAN;HARDWARE", "ST-1.5"),
    Bar(6, "sash", "F", "SA-7002", "Sash 78 mm", 78, 78, "bottom", "W", 96, 45,
        "CUT;DRAIN;WELD;CLEAN", "ST-1.5"),
    Bar(7, "mullion", "P", "MU-7003", "Mullion 84 mm", 84, 70, "vertical", "H", 140, 90,
        "CUT;MILL;SCREW", "ST-2.0"),
    Bar(8, "glazing bead", "G", "GB-7004", "Glazing bead 22 mm", 22, 24, "horizontal", "W",
        180, 90, "CUT", None),
)
# name, code, lamination, gasket
COLOURS = (("White", "WH", None, "EPDM black"),
           ("Anthracite grey", "AN", "RAL 7016 foil outside", "TPE grey"),
           ("Golden oak", "GO", "Golden oak foil both sides", "TPE grey"))
BAR_LENGTH = 6500


def _projects(tenant: DemoTenant) -> Iterator[dict]:
    for p in range(1, tenant.projects + 1):
        yield {"guid": str(demo_guid(tenant, p)), "company_guid": str(tenant.company_guid),
               "code": f"{tenant.code}-{1000 + p}", "name": _PROJECT_NAMES[p - 1]}


def _components(tenant: DemoTenant) -> Iterator[dict]:
    for p in range(1, tenant.projects + 1):
        for c in range(1, COMPONENTS_PER_PROJECT + 1):
            yield {"guid": str(demo_guid(tenant, p, c)), "company_guid": str(tenant.company_guid),
                   "project_guid": str(demo_guid(tenant, p)), "code": f"W{c:02d}",
                   "name": _COMPONENT_NAMES[c - 1]}


def _windows(tenant: DemoTenant) -> Iterator[tuple[int, int, int]]:
    for p in range(1, tenant.projects + 1):
        for c in range(1, COMPONENTS_PER_PROJECT + 1):
            for a in range(1, ASSEMBLIES_PER_COMPONENT + 1):
                yield p, c, a


def _assemblies(tenant: DemoTenant) -> Iterator[dict]:
    for p, c, a in _windows(tenant):
        yield {"guid": str(demo_guid(tenant, p, c, a)), "company_guid": str(tenant.company_guid),
               "project_guid": str(demo_guid(tenant, p)),
               "component_guid": str(demo_guid(tenant, p, c)), "code": f"A{a:03d}",
               "name": f"Position {(c - 1) * ASSEMBLIES_PER_COMPONENT + a}"}


def _pieces(tenant: DemoTenant) -> Iterator[dict]:
    """The cut bars of every window: lengths follow its width and height."""
    barcode_prefix = f"4{TENANTS.index(tenant) + 1}"
    for p, c, a in _windows(tenant):
        number = (c - 1) * ASSEMBLIES_PER_COMPONENT + a
        width = 600 + ((p * 7 + c * 13 + a * 31) % 25) * 50
        height = 800 + ((p * 11 + c * 5 + a * 17) % 29) * 50
        colour, colour_code, lamination, gasket = COLOURS[(p + c + a) % 3]
        trolley = f"T{(number - 1) // 10 + 1:02d}"
        batch = (number - 1) // 4 + 1
        for bar in BARS[:PIECES_PER_ASSEMBLY]:
            outer = (width if bar.along == "W" else height) - bar.shorten
            cell = f"{((number - 1) % 10) * PIECES_PER_ASSEMBLY + bar.k:02d}"
            slot = f"{trolley}/{cell}"
            yield {
                "guid": str(demo_guid(tenant, p, c, a, bar.k)),
                "company_guid": str(tenant.company_guid),
                "project_guid": str(demo_guid(tenant, p)),
                "component_guid": str(demo_guid(tenant, p, c)),
                "assembly_guid": str(demo_guid(tenant, p, c, a)),
                "piece_id": f"W{c:02d}-A{a:03d}-{bar.k}",
                "barcode": f"{barcode_prefix}{p:03d}{number:04d}{bar.k:02d}",
                "outer_length": outer,
                "inner_length": outer - 2 * bar.profile_height if bar.angle == 45 else outer,
                "angle_left": bar.angle,
                "angle_right": bar.angle,
                "assembly_width": width,
                "assembly_height": height,
                "reinforcement_length": outer - 2 * bar.profile_height - 20
                if bar.reinforcement_code else None,
                "bar_rest": BAR_LENGTH % (outer + 3),
                "bar_length": BAR_LENGTH,
                "bar_cutting_tolerance": 3,
                "profile_width": bar.profile_width,
                "profile_height": bar.profile_height,
                "welding_tolerance": 3 if bar.angle == 45 else 0,
                "orientation": bar.orientation,
                "trolley": trolley,
                "cell": cell,
                "trolley_cell": slot,
                "trolley_size": "L" if height > 1600 else "M",
                "parent_assembly_trolley_cell": f"{trolley}/{(number - 1) % 10 + 1:02d}",
                "mullion_trolley_cell": slot if bar.profile_type == "mullion" else None,
                "glazing_bead_trolley_cell": slot if bar.profile_type == "glazing bead"
                else None,
                "operations": bar.operations,
                "component_code": f"W{c:02d}",
                "component_description": _COMPONENT_NAMES[c - 1],
                "info2": f"Floor {(a - 1) // 5 + 1}",
                "client": _CLIENTS[p - 1],
                "dealer": f"{tenant.name} direct sales",
                "project_description": _PROJECT_NAMES[p - 1],
                "project_phase": "production" if p == 1 else "planning",
                "reinforcement_code": bar.reinforcement_code,
                "hardware_info": _HARDWARE[c - 1],
                "glass_info": "4/16/4/16/4 Ug 0.6" if c == 3 else "4/16/4 Ug 1.1",
                "project_number": f"{tenant.code}-{1000 + p}",
                "component_number": f"{c:02d}",
                "water_handle": "2 drain slots"
                if bar.orientation == "bottom" and bar.profile_type == "frame" else None,
                "segment_order": str(bar.k),
                "cutting_pattern": f"CP-{batch:03d}",
                "fixing_mode": "welded" if bar.angle == 45 else "screwed",
                "material_type": tenant.material,
                "project_code_parent": f"{tenant.code}-{1000 + p}",
                "bar_id": f"{bar.profile_code}-{colour_code}-B{batch}",
                "profile_code": bar.profile_code,
                "profile_name": bar.profile_name,
                "lamination": lamination,
                "gasket": gasket,
                "profile_color": colour,
                "profile_type_ra": bar.profile_type_ra,
                "profile_type": bar.profile_type,
                "profile_code_with_color": f"{bar.profile_code}-{colour_code}",
            }


ROWS = {"project": _projects, "component": _components, "assembly": _assemblies,
        "piece": _pieces}
BATCH = 1000  # the sync endpoints' limit


def _loader_app(url: URL):
    """The service's app on `url`; it signs nothing, so its key is a throwaway."""
    return create_app(Config(database_url=url,
                             jwt=JWTSettings(secrets.token_urlsafe(48), ("HS256",))))


def load(url: URL) -> list[DemoTenant]:
    """Load the demo tenants missing from the database at `url`; return those loaded now."""
    app = _loader_app(url)
    lock = connect(url)  # held for the whole load: two `make run`s at once load it once
    lock.autocommit = True
    try:
        with lock.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        with app.app_context():
            loaded = [tenant for tenant in TENANTS if _load_tenant(tenant)]
    finally:
        lock.close()  # releases the advisory lock
        engine = app.extensions["pieces_db"].get("engine")
        if engine is not None:
            engine.dispose()
    return loaded


def _load_tenant(tenant: DemoTenant) -> bool:
    """Sync the tenant's rows level by level in one transaction, then apply its deletions;
    False (nothing done) when its first project exists."""
    actor = Principal(subject=DEMO_ACTOR, company_guid=tenant.company_guid,
                      role=Role.COMPANY_ADMIN)
    with db.transaction(tenant.company_guid, readonly=False) as conn:
        if ownership.guid_owner(conn, level="project", guid=demo_guid(tenant, 1)) is not None:
            return False
        for name, level in LEVELS.items():
            schema = BATCH_SCHEMAS[name]()
            rows = list(ROWS[name](tenant))
            for start in range(0, len(rows), BATCH):
                items = schema.load({level.plural: rows[start:start + BATCH]})[level.plural]
                sync.sync_batch(conn, actor, level, items)
    index = TENANTS.index(tenant)
    for deletion in (d for d in DELETIONS if d.tenant == index):
        with db.transaction(tenant.company_guid, readonly=False) as conn:
            cascade.soft_delete(conn, actor, LEVELS[deletion.level],
                                demo_guid(tenant, *deletion.position))
    return True
