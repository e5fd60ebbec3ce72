-- PostgreSQL mirror of the file of the same name in migrations/state/:
-- BIGINT for integers and times, identity columns for ids, TEXT COLLATE "C"
-- so that text sorts by its bytes as in SQLite. Keep both sets equal in
-- meaning (src/store/tests/schema.rs compares them).
-- DORA metrics (issue 16): the commit a deployment released, for the lead
-- time for changes. `commit_sha` is hex (7 to 64 characters, as the client
-- sent it: `cutover deploy --commit SHA`, or what `git log` resolved the
-- version to); `commit_time` is when that commit was made, INTEGER unix
-- milliseconds (UTC) like every other time here. Both NULL when unknown
-- (deployments recorded before this column, rollbacks, restarts).
ALTER TABLE deployments ADD COLUMN commit_sha TEXT COLLATE "C";
ALTER TABLE deployments ADD COLUMN commit_time BIGINT;
