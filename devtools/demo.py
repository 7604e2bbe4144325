"""Demo data for local runs: three fixed tenants, 10,000 pieces, some of them soft-deleted.
Loaded by `make run` and `make demo-data` (`python -m devtools demo-data`).

Every GUID is derived from the tenant and the row's position (`demo_guid`), so the demo data
is the same on every machine and docs/running.md can name rows. `load(conn)` writes it all
in one transaction, set-based (INSERT … SELECT over generate_series), and does nothing for a
tenant that already has projects, so running it again is a no-op.

Each tenant has `projects` projects; each project 5 components (window types); each
component 25 assemblies (windows); each assembly 8 pieces (the cut bars of one window).
The soft-deleted rows follow the cascade rules of SPEC §5 (see `DELETIONS`).
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

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
    1-based; give as many as the level needs). The SQL below computes the same value."""
    path = "".join(f"/{n}" for n in position)
    return uuid.UUID(hashlib.md5(f"pieces-demo:{tenant.company_guid}{path}".encode()).hexdigest())


@dataclass(frozen=True)
class Deletion:
    """A soft delete in the demo data: the row at `position` of tenant number `tenant`
    (0-based) and its active descendants, all with deleted_at = load time - `days_ago`."""

    tenant: int
    position: tuple[int, ...]
    days_ago: int

    @property
    def entity(self) -> str:
        return ("project", "component", "assembly", "piece")[len(self.position) - 1]


# Applied oldest first. Tenant 2's piece (2, 4, 1, 1) was deleted on its own before its
# component was, so restoring that component leaves it deleted (SPEC §5).
DELETIONS = (
    Deletion(1, (2, 4, 1, 1), days_ago=5),
    Deletion(0, (1, 1, 1, 8), days_ago=4),
    Deletion(0, (1, 1, 2, 8), days_ago=4),
    Deletion(0, (1, 1, 3, 8), days_ago=3),
    Deletion(0, (1, 2, 7, 5), days_ago=3),
    Deletion(0, (2, 1, 1, 7), days_ago=3),
    Deletion(2, (1, 1, 1, 7), days_ago=3),
    Deletion(2, (1, 1, 2, 7), days_ago=3),
    Deletion(2, (1, 3, 9, 2), days_ago=3),
    Deletion(1, (2, 4), days_ago=2),
    Deletion(0, (1, 2, 3), days_ago=1),
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

# Each statement runs once per tenant, as pieces_app with that tenant set, so RLS admits it
# whatever role DATABASE_URL names. Positions come from generate_series; GUIDs are
# md5('pieces-demo:<tenant>/<p>/<c>/<a>/<k>'), as in demo_guid().
_INSERT_PROJECTS = """
INSERT INTO projects (guid, company_guid, code, name, created_at, updated_at)
SELECT md5(%(seed)s || '/' || p)::uuid,
       %(tenant)s,
       %(code)s || '-' || (1000 + p),
       (%(project_names)s::text[])[p],
       t.created_at,
       t.created_at
FROM generate_series(1, %(projects)s) AS p
CROSS JOIN LATERAL (
    SELECT date_trunc('day', now()) - interval '90 days' + p * interval '1 day' AS created_at
) AS t
"""

_INSERT_COMPONENTS = """
INSERT INTO components (guid, company_guid, project_guid, code, name, created_at, updated_at)
SELECT md5(%(seed)s || '/' || p || '/' || c)::uuid,
       %(tenant)s,
       md5(%(seed)s || '/' || p)::uuid,
       'W' || lpad(c::text, 2, '0'),
       (%(component_names)s::text[])[c],
       t.created_at,
       t.created_at
FROM generate_series(1, %(projects)s) AS p
CROSS JOIN generate_series(1, %(components)s) AS c
CROSS JOIN LATERAL (
    SELECT date_trunc('day', now()) - interval '90 days' + p * interval '1 day'
           + c * interval '1 hour' AS created_at
) AS t
"""

_INSERT_ASSEMBLIES = """
INSERT INTO assemblies (guid, company_guid, project_guid, component_guid, code, name,
                        created_at, updated_at)
SELECT md5(%(seed)s || '/' || p || '/' || c || '/' || a)::uuid,
       %(tenant)s,
       md5(%(seed)s || '/' || p)::uuid,
       md5(%(seed)s || '/' || p || '/' || c)::uuid,
       'A' || lpad(a::text, 3, '0'),
       'Position ' || ((c - 1) * %(assemblies)s + a),
       t.created_at,
       t.created_at
FROM generate_series(1, %(projects)s) AS p
CROSS JOIN generate_series(1, %(components)s) AS c
CROSS JOIN generate_series(1, %(assemblies)s) AS a
CROSS JOIN LATERAL (
    SELECT date_trunc('day', now()) - interval '90 days' + p * interval '1 day'
           + c * interval '1 hour' + a * interval '2 minutes' AS created_at
) AS t
"""

# The 8 bars of one window: a frame cut at 45° (welded), a sash top and bottom, a mullion
# and a glazing bead cut at 90°. `along` says whether a bar runs along the window's width
# (W) or height (H); `shorten` is taken off that dimension.
_INSERT_PIECES = """
INSERT INTO pieces (
    guid, company_guid, project_guid, component_guid, assembly_guid,
    piece_id, barcode,
    outer_length, inner_length, angle_left, angle_right,
    assembly_width, assembly_height, reinforcement_length, other_length,
    bar_rest, bar_length, bar_cutting_tolerance, profile_width, profile_height,
    welding_tolerance,
    orientation, trolley, cell, trolley_cell, trolley_size,
    parent_assembly_trolley_cell, mullion_trolley_cell, glazing_bead_trolley_cell,
    operations, component_code, component_description, info2, info3,
    client, dealer, project_description, project_phase, reinforcement_code,
    hardware_info, glass_info, project_number, component_number, water_handle,
    segment_order, cutting_pattern, fixing_mode, material_type, project_code_parent,
    bar_id, profile_code, profile_name, lamination, gasket,
    profile_color, profile_type_ra, profile_type, profile_code_with_color,
    created_at, updated_at
)
SELECT md5(%(seed)s || '/' || p || '/' || c || '/' || a || '/' || bar.k)::uuid,
       %(tenant)s,
       md5(%(seed)s || '/' || p)::uuid,
       md5(%(seed)s || '/' || p || '/' || c)::uuid,
       md5(%(seed)s || '/' || p || '/' || c || '/' || a)::uuid,
       format('W%%s-A%%s-%%s', lpad(c::text, 2, '0'), lpad(a::text, 3, '0'), bar.k),
       %(barcode_prefix)s || lpad(p::text, 3, '0') || lpad(w.number::text, 4, '0')
           || lpad(bar.k::text, 2, '0'),
       len.outer_length,
       CASE WHEN bar.angle = 45 THEN len.outer_length - 2 * bar.profile_height
            ELSE len.outer_length END,
       bar.angle,
       bar.angle,
       w.width,
       w.height,
       CASE WHEN bar.reinforcement_code IS NOT NULL
            THEN len.outer_length - 2 * bar.profile_height - 20 END,
       NULL,
       6500 - (6500 / (len.outer_length + 3)) * (len.outer_length + 3),
       6500,
       3,
       bar.profile_width,
       bar.profile_height,
       CASE WHEN bar.angle = 45 THEN 3 ELSE 0 END,
       bar.orientation,
       slot.trolley,
       slot.cell,
       slot.trolley || '/' || slot.cell,
       CASE WHEN w.height > 1600 THEN 'L' ELSE 'M' END,
       slot.trolley || '/' || lpad(((w.number - 1) %% 10 + 1)::text, 2, '0'),
       CASE WHEN bar.profile_type = 'mullion' THEN slot.trolley || '/' || slot.cell END,
       CASE WHEN bar.profile_type = 'glazing bead' THEN slot.trolley || '/' || slot.cell END,
       bar.operations,
       'W' || lpad(c::text, 2, '0'),
       (%(component_names)s::text[])[c],
       'Floor ' || ((a - 1) / 5 + 1),
       NULL,
       (%(clients)s::text[])[p],
       %(dealer)s,
       (%(project_names)s::text[])[p],
       CASE WHEN p = 1 THEN 'production' ELSE 'planning' END,
       bar.reinforcement_code,
       (%(hardware)s::text[])[c],
       CASE WHEN c = 3 THEN '4/16/4/16/4 Ug 0.6' ELSE '4/16/4 Ug 1.1' END,
       %(code)s || '-' || (1000 + p),
       lpad(c::text, 2, '0'),
       CASE WHEN bar.orientation = 'bottom' AND bar.profile_type = 'frame'
            THEN '2 drain slots' END,
       bar.k::text,
       'CP-' || lpad(((w.number - 1) / 4 + 1)::text, 3, '0'),
       CASE WHEN bar.angle = 45 THEN 'welded' ELSE 'screwed' END,
       %(material)s,
       %(code)s || '-' || (1000 + p),
       format('%%s-%%s-B%%s', bar.profile_code, colour.code, (w.number - 1) / 4 + 1),
       bar.profile_code,
       bar.profile_name,
       colour.lamination,
       colour.gasket,
       colour.name,
       bar.profile_type_ra,
       bar.profile_type,
       bar.profile_code || '-' || colour.code,
       t.created_at,
       t.created_at
FROM generate_series(1, %(projects)s) AS p
CROSS JOIN generate_series(1, %(components)s) AS c
CROSS JOIN generate_series(1, %(assemblies)s) AS a
CROSS JOIN LATERAL (
    SELECT (c - 1) * %(assemblies)s + a AS number,
           600 + ((p * 7 + c * 13 + a * 31) %% 25) * 50 AS width,
           800 + ((p * 11 + c * 5 + a * 17) %% 29) * 50 AS height,
           (p + c + a) %% 3 AS colour_index
) AS w
CROSS JOIN (VALUES
    (1, 'frame', 'R', 'FR-7001', 'Frame 70 mm', 70, 70, 'top', 'W', 0, 45,
     'CUT;WELD;CLEAN', 'ST-1.5'),
    (2, 'frame', 'R', 'FR-7001', 'Frame 70 mm', 70, 70, 'bottom', 'W', 0, 45,
     'CUT;DRAIN;WELD;CLEAN', 'ST-1.5'),
    (3, 'frame', 'R', 'FR-7001', 'Frame 70 mm', 70, 70, 'left', 'H', 0, 45,
     'CUT;WELD;CLEAN', 'ST-1.5'),
    (4, 'frame', 'R', 'FR-7001', 'Frame 70 mm', 70, 70, 'right', 'H', 0, 45,
     'CUT;WELD;CLEAN', 'ST-1.5'),
    (5, 'sash', 'F', 'SA-7002', 'Sash 78 mm', 78, 78, 'top', 'W', 96, 45,
     'CUT;WELD;CLEAN;HARDWARE', 'ST-1.5'),
    (6, 'sash', 'F', 'SA-7002', 'Sash 78 mm', 78, 78, 'bottom', 'W', 96, 45,
     'CUT;DRAIN;WELD;CLEAN', 'ST-1.5'),
    (7, 'mullion', 'P', 'MU-7003', 'Mullion 84 mm', 84, 70, 'vertical', 'H', 140, 90,
     'CUT;MILL;SCREW', 'ST-2.0'),
    (8, 'glazing bead', 'G', 'GB-7004', 'Glazing bead 22 mm', 22, 24, 'horizontal', 'W', 180,
     90, 'CUT', NULL)
) AS bar(k, profile_type, profile_type_ra, profile_code, profile_name, profile_width,
         profile_height, orientation, along, shorten, angle, operations, reinforcement_code)
CROSS JOIN LATERAL (
    SELECT CASE bar.along WHEN 'W' THEN w.width ELSE w.height END - bar.shorten AS outer_length
) AS len
CROSS JOIN LATERAL (
    SELECT (ARRAY['White', 'Anthracite grey', 'Golden oak'])[w.colour_index + 1] AS name,
           (ARRAY['WH', 'AN', 'GO'])[w.colour_index + 1] AS code,
           (ARRAY[NULL, 'RAL 7016 foil outside', 'Golden oak foil both sides'])
               [w.colour_index + 1] AS lamination,
           (ARRAY['EPDM black', 'TPE grey', 'TPE grey'])[w.colour_index + 1] AS gasket
) AS colour
CROSS JOIN LATERAL (
    SELECT 'T' || lpad(((w.number - 1) / 10 + 1)::text, 2, '0') AS trolley,
           lpad((((w.number - 1) %% 10) * %(pieces)s + bar.k)::text, 2, '0') AS cell
) AS slot
CROSS JOIN LATERAL (
    SELECT date_trunc('day', now()) - interval '90 days' + p * interval '1 day'
           + c * interval '1 hour' + a * interval '2 minutes'
           + bar.k * interval '1 second' AS created_at
) AS t
WHERE bar.k <= %(pieces)s
"""


@dataclass(frozen=True)
class _Level:
    table: str
    descendants: tuple[str, ...]  # tables below, top-down
    own_column: str               # this entity's GUID column in descendant tables


# What the demo deletes need of the hierarchy. A local copy of what was the cascade's
# `pieces_service.dao.hierarchy.LEVELS` (now replaced by pieces_service/catalogue.py), so
# that this module does not follow the service's internals until demo loading goes through
# the service's own cascade code.
_LEVELS = {
    "project": _Level("projects", ("components", "assemblies", "pieces"), "project_guid"),
    "component": _Level("components", ("assemblies", "pieces"), "component_guid"),
    "assembly": _Level("assemblies", ("pieces",), "assembly_guid"),
    "piece": _Level("pieces", (), ""),
}

# A soft delete as the service's cascade does it (pieces_service/dao/hierarchy.py), but
# backdated: the whole load is one transaction, where the service's now() would give every
# deletion the same deleted_at, and "deleted earlier on its own" needs an earlier one.
_DELETE_ROW = """
UPDATE {table}
SET is_active = false,
    deleted_at = now() - make_interval(days => %(days_ago)s),
    updated_at = now() - make_interval(days => %(days_ago)s)
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND is_active
"""
_DELETE_DESCENDANTS = """
UPDATE {table}
SET is_active = false,
    deleted_at = now() - make_interval(days => %(days_ago)s),
    updated_at = now() - make_interval(days => %(days_ago)s)
WHERE company_guid = %(tenant)s
  AND {parent_column} = %(guid)s
  AND is_active
"""
_AUDIT = """
INSERT INTO audit_log (company_guid, entity_type, entity_guid, action, actor, rows_affected,
                       occurred_at)
VALUES (%(tenant)s, %(entity)s, %(guid)s, 'delete', %(actor)s, %(rows)s,
        now() - make_interval(days => %(days_ago)s))
"""


def load(conn) -> list[DemoTenant]:
    """Load the demo data through the psycopg2 connection `conn` (not inside a transaction)
    in one transaction; return the tenants loaded now. A tenant that already has projects
    is left alone, so a second call loads nothing."""
    previous_autocommit = conn.autocommit
    conn.autocommit = False
    try:
        with conn, conn.cursor() as cur:  # commits on success, rolls back on error
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            cur.execute("SET LOCAL ROLE pieces_app")
            loaded = []
            for tenant in TENANTS:
                cur.execute("SELECT set_config('pieces.tenant', %s, true)",
                            (str(tenant.company_guid),))
                cur.execute("SELECT EXISTS (SELECT FROM projects WHERE company_guid = %s)",
                            (str(tenant.company_guid),))
                if cur.fetchone()[0]:
                    continue
                _insert_tenant(cur, tenant)
                _apply_deletions(cur, tenant)
                loaded.append(tenant)
        return loaded
    finally:
        conn.autocommit = previous_autocommit


def _insert_tenant(cur, tenant: DemoTenant) -> None:
    index = TENANTS.index(tenant) + 1
    params = {
        "seed": f"pieces-demo:{tenant.company_guid}",
        "tenant": str(tenant.company_guid),
        "code": tenant.code,
        "material": tenant.material,
        "dealer": f"{tenant.name} direct sales",
        "barcode_prefix": f"4{index}",
        "projects": tenant.projects,
        "components": COMPONENTS_PER_PROJECT,
        "assemblies": ASSEMBLIES_PER_COMPONENT,
        "pieces": PIECES_PER_ASSEMBLY,
        "project_names": _PROJECT_NAMES,
        "clients": _CLIENTS,
        "component_names": _COMPONENT_NAMES,
        "hardware": _HARDWARE,
    }
    for statement in (_INSERT_PROJECTS, _INSERT_COMPONENTS, _INSERT_ASSEMBLIES, _INSERT_PIECES):
        cur.execute(statement, params)


def _apply_deletions(cur, tenant: DemoTenant) -> None:
    index = TENANTS.index(tenant)
    for deletion in sorted((d for d in DELETIONS if d.tenant == index),
                           key=lambda d: -d.days_ago):
        entity = deletion.entity
        params = {"tenant": str(tenant.company_guid),
                  "guid": str(demo_guid(tenant, *deletion.position)),
                  "days_ago": deletion.days_ago, "entity": entity, "actor": DEMO_ACTOR}
        level = _LEVELS[entity]
        cur.execute(_DELETE_ROW.format(table=level.table), params)
        rows = cur.rowcount
        for table in level.descendants:
            cur.execute(_DELETE_DESCENDANTS.format(table=table, parent_column=level.own_column),
                        params)
            rows += cur.rowcount
        cur.execute(_AUDIT, {**params, "rows": rows})
