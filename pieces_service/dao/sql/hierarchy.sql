-- Soft delete and restore across Project -> Component -> Assembly -> Piece.
-- The same statement shape serves every level, so each is written once with {table} and
-- {parent_column} filled from the fixed whitelist in dao/hierarchy.py (never from input).
-- One statement per level; each runs in READ COMMITTED with its own snapshot, so a level
-- updated after waiting on a lock also sees rows committed meanwhile.

-- name: delete_root
-- Mark one active row deleted; deleted_at = now() is the transaction's timestamp, shared by
-- every level of the cascade.
UPDATE {table}
SET is_active = false,
    deleted_at = now(),
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND is_active
RETURNING deleted_at;

-- name: delete_descendants
-- Mark the active rows under one ancestor deleted with the same deleted_at.
UPDATE {table}
SET is_active = false,
    deleted_at = now(),
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND {parent_column} = %(guid)s
  AND is_active;

-- name: lock_deleted_root
-- The deleted row to restore, locked, with its parents.
SELECT deleted_at,
       {parent_columns}
FROM {table}
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND NOT is_active
FOR UPDATE;

-- name: restore_root
UPDATE {table}
SET is_active = true,
    deleted_at = NULL,
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND NOT is_active;

-- name: restore_descendants
-- Bring back exactly the rows the ancestor's cascade deleted: same deleted_at. Rows deleted
-- earlier on their own keep their older deleted_at and stay deleted.
UPDATE {table}
SET is_active = true,
    deleted_at = NULL,
    updated_at = now()
WHERE company_guid = %(tenant)s
  AND {parent_column} = %(guid)s
  AND NOT is_active
  AND deleted_at = %(deleted_at)s;
