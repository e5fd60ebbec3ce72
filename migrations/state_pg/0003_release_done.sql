-- PostgreSQL mirror of the file of the same name in migrations/state/:
-- BIGINT for integers and times, identity columns for ids, TEXT COLLATE "C"
-- so that text sorts by its bytes as in SQLite. Keep both sets equal in
-- meaning (src/store/tests/schema.rs compares them).
-- A release's life goes on after its deployment ends (warm window, retire,
-- contract migrations): `done` says whether anything is left to do, so a
-- restarted daemon picks up exactly the releases that are not finished.
ALTER TABLE rollouts ADD COLUMN done BIGINT  NOT NULL DEFAULT 0;
-- Rows written before this column existed belong to deployments that ended.
UPDATE rollouts SET done = 1
WHERE deployment_id IN (SELECT id FROM deployments WHERE state <> 'running');
