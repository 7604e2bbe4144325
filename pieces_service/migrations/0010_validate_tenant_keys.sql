-- Keys ready for Citus (docs/scale-out.md), step 3 of 3: validate the foreign key 0009
-- re-pointed at projects' new primary key. VALIDATE CONSTRAINT scans components under SHARE
-- UPDATE EXCLUSIVE (reads and writes go on) and projects under ROW SHARE; in its own file,
-- so that no ACCESS EXCLUSIVE lock of 0009 is held through the scan (docs/migrations.md).

ALTER TABLE components VALIDATE CONSTRAINT components_project_fkey;
