"""The hierarchy and its attributes, defined once.

`Project -> Component -> Assembly -> Piece`: each `Level` names its table, its parents, its
natural key and the attributes sync writes and reads return. Everything else derives from
this module: the rendered SQL in `dao/sql/` (`dao/render.py`), the sync body schemas, the
response schemas of the OpenAPI document and its examples, the cascade and restore rules,
and the demo data. `tests/test_catalogue.py` compares it with the migrated database, so a
migration and the catalogue cannot drift apart.

Adding a piece attribute is one migration (`ALTER TABLE pieces ADD COLUMN …`) and one line
in `PIECE_ATTRIBUTES`, then `make sql` to re-render the statements (README, "Adding a piece
attribute").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# Limits of the values sync accepts (PostgreSQL `text` and `integer`).
MAX_CODE_LENGTH = 255
MAX_TEXT_LENGTH = 1000
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# The id of the transaction that last wrote the row (migration 0004; a trigger sets it). The
# change feed orders by it; no response carries it.
CHANGE_COLUMN = "change_xid"

Kind = Literal["code", "text", "integer"]
SQL_TYPE = {"code": "text", "text": "text", "integer": "integer", "uuid": "uuid",
            "boolean": "boolean", "timestamptz": "timestamptz"}


@dataclass(frozen=True)
class Attribute:
    """A field a sync item carries besides its guid, tenant and parents.

    kind: `code` (required identifying text, 1–255 characters), `text` (optional, up to
    1000) or `integer` (optional, a PostgreSQL `integer`). `example` feeds the OpenAPI
    examples.
    """

    name: str
    kind: Kind
    example: Any = None

    @property
    def required(self) -> bool:
        return self.kind == "code"


@dataclass(frozen=True)
class Column:
    """A column of a level's table, as the migrations create it."""

    name: str
    sql_type: str
    nullable: bool


@dataclass(frozen=True)
class Level:
    """One level of the hierarchy."""

    name: str                       # "assembly": entity type in the audit trail
    plural: str                     # "assemblies": table, URL segment, sync body key
    title: str                      # "Assembly": in messages
    parents: tuple[str, ...]        # parent level names, top-down
    natural_key: tuple[str, ...]    # besides company_guid; items without guid match on it
    attributes: tuple[Attribute, ...]
    optional_parents: tuple[str, ...] = ()  # parents an item may leave out (a piece's assembly)

    @property
    def a_name(self) -> str:
        """The name with its article, for prose: "a piece", "an assembly"."""
        return f"{'an' if self.name[0] in 'aeiou' else 'a'} {self.name}"

    @property
    def table(self) -> str:
        return self.plural

    @property
    def guid_column(self) -> str:
        """This level's GUID column in the tables below it."""
        return f"{self.name}_guid"

    @property
    def parent_columns(self) -> tuple[str, ...]:
        return tuple(f"{parent}_guid" for parent in self.parents)

    @property
    def descendants(self) -> tuple["Level", ...]:
        """The levels below, top-down (what a cascade from this level reaches)."""
        return tuple(level for level in LEVELS.values() if self.name in level.parents)

    @property
    def item_fields(self) -> tuple[str, ...]:
        """What a sync item carries, in table order."""
        return ("guid", "company_guid", *self.parent_columns,
                *(a.name for a in self.attributes))

    @property
    def written_columns(self) -> tuple[str, ...]:
        """What sync sets on an existing row: parents and attributes (never the guid, the
        tenant, or is_active/deleted_at)."""
        return (*self.parent_columns, *(a.name for a in self.attributes))

    @property
    def columns(self) -> tuple[Column, ...]:
        """The table's columns, in order."""
        return (
            Column("guid", "uuid", False),
            Column("company_guid", "uuid", False),
            *(Column(f"{p}_guid", "uuid", p in self.optional_parents) for p in self.parents),
            *(Column(a.name, SQL_TYPE[a.kind], not a.required) for a in self.attributes),
            Column("is_active", "boolean", False),
            Column("deleted_at", "timestamptz", True),
            Column("created_at", "timestamptz", False),
            Column("updated_at", "timestamptz", False),
            Column(CHANGE_COLUMN, "xid8", False),
        )

    def column(self, name: str) -> Column:
        """The column `name` of this level's table."""
        return next(column for column in self.columns if column.name == name)

    @property
    def fields(self) -> tuple[str, ...]:
        """What a read returns of a row of this level: every column but the change stamp
        (for pieces, `DETAIL_FIELDS` orders them as the SPEC does)."""
        if self.name == "piece":
            return DETAIL_FIELDS
        return tuple(column.name for column in self.columns if column.name != CHANGE_COLUMN)


def _coded(code_example: str, name_example: str) -> tuple[Attribute, ...]:
    return (Attribute("code", "code", code_example), Attribute("name", "text", name_example))


# SPEC §7, in table order.
PIECE_ATTRIBUTES = (
    Attribute("piece_id", "code", "P1-W01-001"),
    Attribute("barcode", "text", "2000000000017"),
    Attribute("outer_length", "integer", 1480),
    Attribute("inner_length", "integer", 1392),
    Attribute("angle_left", "integer", 45),
    Attribute("angle_right", "integer", 45),
    Attribute("assembly_width", "integer"),
    Attribute("assembly_height", "integer"),
    Attribute("reinforcement_length", "integer"),
    Attribute("other_length", "integer"),
    Attribute("bar_rest", "integer"),
    Attribute("bar_length", "integer"),
    Attribute("bar_cutting_tolerance", "integer"),
    Attribute("profile_width", "integer", 70),
    Attribute("profile_height", "integer", 82),
    Attribute("welding_tolerance", "integer"),
    Attribute("orientation", "text", "Horizontal"),
    Attribute("trolley", "text", "T07"),
    Attribute("cell", "text", "12"),
    Attribute("trolley_cell", "text", "T07-12"),
    Attribute("trolley_size", "text"),
    Attribute("parent_assembly_trolley_cell", "text"),
    Attribute("mullion_trolley_cell", "text"),
    Attribute("glazing_bead_trolley_cell", "text"),
    Attribute("operations", "text"),
    Attribute("component_code", "text"),
    Attribute("component_description", "text"),
    Attribute("info2", "text"),
    Attribute("info3", "text"),
    Attribute("client", "text"),
    Attribute("dealer", "text"),
    Attribute("project_description", "text"),
    Attribute("project_phase", "text"),
    Attribute("reinforcement_code", "text"),
    Attribute("hardware_info", "text"),
    Attribute("glass_info", "text"),
    Attribute("project_number", "text"),
    Attribute("component_number", "text"),
    Attribute("water_handle", "text"),
    Attribute("segment_order", "text"),
    Attribute("cutting_pattern", "text"),
    Attribute("fixing_mode", "text"),
    Attribute("material_type", "text"),
    Attribute("project_code_parent", "text"),
    Attribute("bar_id", "text"),
    Attribute("profile_code", "text", "PF001"),
    Attribute("profile_name", "text", "Casement frame 70"),
    Attribute("lamination", "text"),
    Attribute("gasket", "text"),
    Attribute("profile_color", "text", "RAL9016"),
    Attribute("profile_type_ra", "text"),
    Attribute("profile_type", "text"),
    Attribute("profile_code_with_color", "text"),
)

LEVELS: dict[str, Level] = {
    level.name: level for level in (
        Level("project", "projects", "Project", (), ("code",),
              _coded("P-2026-001", "Riverside flats")),
        Level("component", "components", "Component", ("project",), ("project_guid", "code"),
              _coded("W01", "Tilt-turn window")),
        Level("assembly", "assemblies", "Assembly", ("project", "component"),
              ("component_guid", "code"), _coded("W01-A1", "Sash")),
        Level("piece", "pieces", "Piece", ("project", "component", "assembly"),
              ("project_guid", "piece_id"), PIECE_ATTRIBUTES, optional_parents=("assembly",)),
    )
}
PIECE = LEVELS["piece"]

# A piece in a list (PieceResponse, SPEC §4), in the order of the SPEC.
LIST_FIELDS = ("guid", "piece_id", "project_guid", "component_guid", "assembly_guid",
               "barcode", "outer_length", "angle_left", "angle_right", "is_active",
               "deleted_at", "company_guid", "created_at")
# PieceDetail: the list fields, updated_at, then every other attribute in table order.
DETAIL_FIELDS = (*LIST_FIELDS, "updated_at",
                 *(a.name for a in PIECE_ATTRIBUTES if a.name not in LIST_FIELDS))
# A stored piece lacking one of these is an integrity alarm (SPEC §4: 500).
REQUIRED_DETAIL_FIELDS = ("guid", "piece_id", "project_guid", "component_guid",
                          "company_guid", "is_active", "created_at")


def piece_column(name: str) -> Column:
    """The `pieces` column `name`."""
    return PIECE.column(name)
