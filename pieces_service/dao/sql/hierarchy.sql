-- Rendered from pieces_service/catalogue.py by pieces_service/dao/render.py
-- (`make sql`). Edit those, not this file: tests/dao/test_rendered_sql.py checks
-- that the two agree.

-- name: lock_active_project
-- The active project a conditional delete (If-Match) acts on, locked before its current
-- representation is read, so that no write comes between the precondition and the delete.
SELECT true AS found
FROM projects
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND is_active
FOR UPDATE;

-- name: delete_project
-- Mark one active project deleted; deleted_at = now() is the transaction's timestamp,
-- shared by every level of the cascade.
UPDATE projects
SET is_active = false,
    deleted_at = now(),
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND is_active
RETURNING deleted_at;

-- name: delete_components_of_project
-- Mark the active components under one project deleted with the same deleted_at.
UPDATE components
SET is_active = false,
    deleted_at = now(),
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND project_guid = %(guid)s
  AND is_active;

-- name: delete_assemblies_of_project
-- Mark the active assemblies under one project deleted with the same deleted_at.
UPDATE assemblies
SET is_active = false,
    deleted_at = now(),
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND project_guid = %(guid)s
  AND is_active;

-- name: delete_pieces_of_project
-- Mark the active pieces under one project deleted with the same deleted_at.
UPDATE pieces
SET is_active = false,
    deleted_at = now(),
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND project_guid = %(guid)s
  AND is_active;

-- name: lock_deleted_project
-- The deleted project to restore, locked, with its parents.
SELECT deleted_at,
       NULL AS no_parent
FROM projects
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND NOT is_active
FOR UPDATE;

-- name: restore_project
-- Bring back one (locked, deleted) project.
UPDATE projects
SET is_active = true,
    deleted_at = NULL,
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND NOT is_active;

-- name: restore_components_of_project
-- Bring back exactly the components the project's cascade deleted: same deleted_at. Rows
-- deleted earlier on their own keep their older deleted_at and stay deleted.
UPDATE components
SET is_active = true,
    deleted_at = NULL,
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND project_guid = %(guid)s
  AND NOT is_active
  AND deleted_at = %(deleted_at)s;

-- name: restore_assemblies_of_project
-- Bring back exactly the assemblies the project's cascade deleted: same deleted_at. Rows
-- deleted earlier on their own keep their older deleted_at and stay deleted.
UPDATE assemblies
SET is_active = true,
    deleted_at = NULL,
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND project_guid = %(guid)s
  AND NOT is_active
  AND deleted_at = %(deleted_at)s;

-- name: restore_pieces_of_project
-- Bring back exactly the pieces the project's cascade deleted: same deleted_at. Rows
-- deleted earlier on their own keep their older deleted_at and stay deleted.
UPDATE pieces
SET is_active = true,
    deleted_at = NULL,
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND project_guid = %(guid)s
  AND NOT is_active
  AND deleted_at = %(deleted_at)s;

-- name: lock_active_component
-- The active component a conditional delete (If-Match) acts on, locked before its current
-- representation is read, so that no write comes between the precondition and the delete.
SELECT true AS found
FROM components
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND is_active
FOR UPDATE;

-- name: delete_component
-- Mark one active component deleted; deleted_at = now() is the transaction's timestamp,
-- shared by every level of the cascade.
UPDATE components
SET is_active = false,
    deleted_at = now(),
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND is_active
RETURNING deleted_at;

-- name: delete_assemblies_of_component
-- Mark the active assemblies under one component deleted with the same deleted_at.
UPDATE assemblies
SET is_active = false,
    deleted_at = now(),
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND component_guid = %(guid)s
  AND is_active;

-- name: delete_pieces_of_component
-- Mark the active pieces under one component deleted with the same deleted_at.
UPDATE pieces
SET is_active = false,
    deleted_at = now(),
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND component_guid = %(guid)s
  AND is_active;

-- name: lock_deleted_component
-- The deleted component to restore, locked, with its parents.
SELECT deleted_at,
       project_guid
FROM components
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND NOT is_active
FOR UPDATE;

-- name: restore_component
-- Bring back one (locked, deleted) component.
UPDATE components
SET is_active = true,
    deleted_at = NULL,
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND NOT is_active;

-- name: restore_assemblies_of_component
-- Bring back exactly the assemblies the component's cascade deleted: same deleted_at. Rows
-- deleted earlier on their own keep their older deleted_at and stay deleted.
UPDATE assemblies
SET is_active = true,
    deleted_at = NULL,
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND component_guid = %(guid)s
  AND NOT is_active
  AND deleted_at = %(deleted_at)s;

-- name: restore_pieces_of_component
-- Bring back exactly the pieces the component's cascade deleted: same deleted_at. Rows
-- deleted earlier on their own keep their older deleted_at and stay deleted.
UPDATE pieces
SET is_active = true,
    deleted_at = NULL,
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND component_guid = %(guid)s
  AND NOT is_active
  AND deleted_at = %(deleted_at)s;

-- name: lock_active_assembly
-- The active assembly a conditional delete (If-Match) acts on, locked before its current
-- representation is read, so that no write comes between the precondition and the delete.
SELECT true AS found
FROM assemblies
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND is_active
FOR UPDATE;

-- name: delete_assembly
-- Mark one active assembly deleted; deleted_at = now() is the transaction's timestamp,
-- shared by every level of the cascade.
UPDATE assemblies
SET is_active = false,
    deleted_at = now(),
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND is_active
RETURNING deleted_at;

-- name: delete_pieces_of_assembly
-- Mark the active pieces under one assembly deleted with the same deleted_at.
UPDATE pieces
SET is_active = false,
    deleted_at = now(),
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND assembly_guid = %(guid)s
  AND is_active;

-- name: lock_deleted_assembly
-- The deleted assembly to restore, locked, with its parents.
SELECT deleted_at,
       project_guid,
       component_guid
FROM assemblies
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND NOT is_active
FOR UPDATE;

-- name: restore_assembly
-- Bring back one (locked, deleted) assembly.
UPDATE assemblies
SET is_active = true,
    deleted_at = NULL,
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND NOT is_active;

-- name: restore_pieces_of_assembly
-- Bring back exactly the pieces the assembly's cascade deleted: same deleted_at. Rows
-- deleted earlier on their own keep their older deleted_at and stay deleted.
UPDATE pieces
SET is_active = true,
    deleted_at = NULL,
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND assembly_guid = %(guid)s
  AND NOT is_active
  AND deleted_at = %(deleted_at)s;

-- name: lock_active_piece
-- The active piece a conditional delete (If-Match) acts on, locked before its current
-- representation is read, so that no write comes between the precondition and the delete.
SELECT true AS found
FROM pieces
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND is_active
FOR UPDATE;

-- name: delete_piece
-- Mark one active piece deleted; deleted_at = now() is the transaction's timestamp, shared
-- by every level of the cascade.
UPDATE pieces
SET is_active = false,
    deleted_at = now(),
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND is_active
RETURNING deleted_at;

-- name: lock_deleted_piece
-- The deleted piece to restore, locked, with its parents.
SELECT deleted_at,
       project_guid,
       component_guid,
       assembly_guid
FROM pieces
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND NOT is_active
FOR UPDATE;

-- name: restore_piece
-- Bring back one (locked, deleted) piece.
UPDATE pieces
SET is_active = true,
    deleted_at = NULL,
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND NOT is_active;
