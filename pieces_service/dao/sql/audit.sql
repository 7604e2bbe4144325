-- name: record
-- One audit row, written in the same transaction as the change it describes.
INSERT INTO audit_log (
    company_guid,
    entity_type,
    entity_guid,
    action,
    actor,
    rows_affected
)
VALUES (
    %(tenant)s,
    %(entity_type)s,
    %(entity_guid)s,
    %(action)s,
    %(actor)s,
    %(rows_affected)s
);

-- name: list_entries
-- A page of the tenant's audit trail, newest first, as a JSON array.
WITH page AS (
    SELECT id,
           entity_type,
           entity_guid,
           action,
           actor,
           company_guid,
           rows_affected,
           occurred_at
    FROM audit_log
    WHERE company_guid = %(tenant)s
      AND (%(entity_guid)s::uuid IS NULL OR entity_guid = %(entity_guid)s)
    ORDER BY occurred_at DESC,
             id DESC
    LIMIT %(limit)s
    OFFSET %(offset)s
)
SELECT coalesce(json_agg(page ORDER BY occurred_at DESC, id DESC), '[]')::text
FROM page;
