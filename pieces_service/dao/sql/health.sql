-- name: schema_state
-- No tenant data: the newest applied migration, and whether this build's newest one is
-- applied (migrations apply in order, so a database a later build migrated further counts).
SELECT (SELECT max(version) FROM schema_migrations) AS current_version,
       EXISTS (SELECT FROM schema_migrations WHERE version = %(head)s) AS at_head;

-- name: replica_position
-- No tenant data: a read replica's replay position and lag in ms, in one statement (db.py,
-- `Replica`). Lag 0 when it is streaming and has replayed all it received (an idle primary
-- sends nothing, so the last replayed commit may be old without anything missing); else
-- the age of the last replayed commit (replay paused or slow, or the stream cut:
-- conservative). NULL position: not a standby (never used).
SELECT pg_last_wal_replay_lsn()::text,
       CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
                 AND EXISTS (SELECT FROM pg_stat_wal_receiver) THEN 0
            ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000,
                          'Infinity')
       END::float8;
