-- The hierarchy Project -> Component -> Assembly -> Piece.
-- Every key and foreign key carries company_guid, so no row can point at another tenant's
-- parent, and the composite FKs also pin the chain (an assembly's component belongs to the
-- same project the assembly names; a piece's assembly belongs to its component).

CREATE TABLE projects (
    guid            uuid        NOT NULL,
    company_guid    uuid        NOT NULL,
    code            text        NOT NULL,
    name            text,
    is_active       boolean     NOT NULL DEFAULT true,
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_pkey PRIMARY KEY (guid),
    CONSTRAINT projects_tenant_guid_key UNIQUE (company_guid, guid),
    CONSTRAINT projects_natural_key UNIQUE (company_guid, code),
    CONSTRAINT projects_deleted_consistent CHECK (is_active = (deleted_at IS NULL))
);

CREATE TABLE components (
    guid            uuid        NOT NULL,
    company_guid    uuid        NOT NULL,
    project_guid    uuid        NOT NULL,
    code            text        NOT NULL,
    name            text,
    is_active       boolean     NOT NULL DEFAULT true,
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT components_pkey PRIMARY KEY (guid),
    CONSTRAINT components_chain_key UNIQUE (company_guid, project_guid, guid),
    CONSTRAINT components_natural_key UNIQUE (company_guid, project_guid, code),
    CONSTRAINT components_project_fkey FOREIGN KEY (company_guid, project_guid)
        REFERENCES projects (company_guid, guid),
    CONSTRAINT components_deleted_consistent CHECK (is_active = (deleted_at IS NULL))
);

CREATE TABLE assemblies (
    guid            uuid        NOT NULL,
    company_guid    uuid        NOT NULL,
    project_guid    uuid        NOT NULL,
    component_guid  uuid        NOT NULL,
    code            text        NOT NULL,
    name            text,
    is_active       boolean     NOT NULL DEFAULT true,
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT assemblies_pkey PRIMARY KEY (guid),
    CONSTRAINT assemblies_chain_key UNIQUE (company_guid, project_guid, component_guid, guid),
    CONSTRAINT assemblies_natural_key UNIQUE (company_guid, component_guid, code),
    CONSTRAINT assemblies_component_fkey FOREIGN KEY (company_guid, project_guid, component_guid)
        REFERENCES components (company_guid, project_guid, guid),
    CONSTRAINT assemblies_deleted_consistent CHECK (is_active = (deleted_at IS NULL))
);

CREATE TABLE pieces (
    guid                        uuid        NOT NULL,
    company_guid                uuid        NOT NULL,
    project_guid                uuid        NOT NULL,
    component_guid              uuid        NOT NULL,
    assembly_guid               uuid,
    piece_id                    text        NOT NULL,
    barcode                     text,
    outer_length                integer,
    inner_length                integer,
    angle_left                  integer,
    angle_right                 integer,
    assembly_width              integer,
    assembly_height             integer,
    reinforcement_length        integer,
    other_length                integer,
    bar_rest                    integer,
    bar_length                  integer,
    bar_cutting_tolerance       integer,
    profile_width               integer,
    profile_height              integer,
    welding_tolerance           integer,
    orientation                 text,
    trolley                     text,
    cell                        text,
    trolley_cell                text,
    trolley_size                text,
    parent_assembly_trolley_cell text,
    mullion_trolley_cell        text,
    glazing_bead_trolley_cell   text,
    operations                  text,
    component_code              text,
    component_description       text,
    info2                       text,
    info3                       text,
    client                      text,
    dealer                      text,
    project_description         text,
    project_phase               text,
    reinforcement_code          text,
    hardware_info               text,
    glass_info                  text,
    project_number              text,
    component_number            text,
    water_handle                text,
    segment_order               text,
    cutting_pattern             text,
    fixing_mode                 text,
    material_type               text,
    project_code_parent         text,
    bar_id                      text,
    profile_code                text,
    profile_name                text,
    lamination                  text,
    gasket                      text,
    profile_color               text,
    profile_type_ra             text,
    profile_type                text,
    profile_code_with_color     text,
    is_active                   boolean     NOT NULL DEFAULT true,
    deleted_at                  timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pieces_pkey PRIMARY KEY (guid),
    CONSTRAINT pieces_natural_key UNIQUE (company_guid, project_guid, piece_id),
    CONSTRAINT pieces_component_fkey FOREIGN KEY (company_guid, project_guid, component_guid)
        REFERENCES components (company_guid, project_guid, guid),
    CONSTRAINT pieces_assembly_fkey
        FOREIGN KEY (company_guid, project_guid, component_guid, assembly_guid)
        REFERENCES assemblies (company_guid, project_guid, component_guid, guid),
    CONSTRAINT pieces_deleted_consistent CHECK (is_active = (deleted_at IS NULL))
);

-- List order is (created_at, guid): total, and new rows land at the end, so offset and
-- cursor pages stay stable while syncs insert. One index per list filter serves that order.
CREATE INDEX pieces_tenant_order_idx ON pieces (company_guid, created_at, guid);
CREATE INDEX pieces_project_order_idx ON pieces (company_guid, project_guid, created_at, guid);
CREATE INDEX pieces_component_order_idx ON pieces (company_guid, component_guid, created_at, guid);
CREATE INDEX pieces_assembly_order_idx ON pieces (company_guid, assembly_guid, created_at, guid)
    WHERE assembly_guid IS NOT NULL;

-- Cascades walk down by parent; these serve them.
CREATE INDEX components_project_idx ON components (company_guid, project_guid);
CREATE INDEX assemblies_project_idx ON assemblies (company_guid, project_guid);
CREATE INDEX assemblies_component_idx ON assemblies (company_guid, component_guid);

-- Audit trail of deletes and restores, written in the same transaction as the change.
CREATE TABLE audit_log (
    id              bigint      GENERATED ALWAYS AS IDENTITY,
    company_guid    uuid        NOT NULL,
    entity_type     text        NOT NULL
        CHECK (entity_type IN ('project', 'component', 'assembly', 'piece')),
    entity_guid     uuid        NOT NULL,
    action          text        NOT NULL CHECK (action IN ('delete', 'restore')),
    actor           text        NOT NULL,
    rows_affected   integer     NOT NULL,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_log_pkey PRIMARY KEY (id)
);
CREATE INDEX audit_log_tenant_order_idx ON audit_log (company_guid, occurred_at DESC, id DESC);
CREATE INDEX audit_log_entity_idx ON audit_log (company_guid, entity_guid, occurred_at DESC, id DESC);
