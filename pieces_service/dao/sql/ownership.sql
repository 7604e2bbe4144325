-- name: guid_owner
-- The tenant that owns one GUID of a level (project, component, assembly or piece),
-- whatever the caller's tenant; NULL when the GUID does not exist. Used only to tell
-- "forbidden" from "absent" and to let SystemAdmin reach a GUID: it returns no data but
-- the owning tenant.
SELECT (SELECT company_guid
        FROM pieces_guid_owners(%(level)s, ARRAY[%(guid)s::uuid])) AS company_guid;

-- name: foreign_guids
-- Which of these GUIDs already belong to a tenant other than %(tenant)s.
SELECT guid
FROM pieces_guid_owners(%(level)s, %(guids)s::uuid[])
WHERE company_guid <> %(tenant)s;
