-- name: service_key
-- No tenant data: a key the service signs with (migration 0004), read once per process on
-- the login connection; pieces_app has no access to service_keys.
SELECT secret
FROM service_keys
WHERE name = %(name)s;
