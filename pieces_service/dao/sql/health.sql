-- name: schema_state
-- No tenant data: the newest applied migration, and whether this build's newest one is
-- applied (migrations apply in order, so a database a later build migrated further counts).
SELECT (SELECT max(version) FROM schema_migrations) AS current_version,
       EXISTS (SELECT FROM schema_migrations WHERE version = %(head)s) AS at_head;
