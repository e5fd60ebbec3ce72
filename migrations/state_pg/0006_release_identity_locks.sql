-- PostgreSQL mirror of the file of the same name in migrations/state/:
-- BIGINT for integers and times, identity columns for ids, TEXT COLLATE "C"
-- so that text sorts by its bytes as in SQLite. Keep both sets equal in
-- meaning (src/store/tests/schema.rs compares them).
-- What a deployment released (issue 15, part C): the release digest and the
-- per-service digests it combines, one row per deployment of kind deploy.
-- `services` is JSON: { SERVICE: { "digest": HEX, "parts": [ { "kind":
-- "executable" | "artifact" | "image", "name": TEXT, "sha256": HEX } ] } }.
-- No foreign key: the row outlives nothing, and a rebuilt deployments table
-- does not cascade into it.
CREATE TABLE release_digests (
    deployment_id BIGINT  PRIMARY KEY,
    environment   TEXT COLLATE "C"    NOT NULL,
    version       TEXT COLLATE "C"    NOT NULL,
    digest        TEXT COLLATE "C"    NOT NULL,
    services      TEXT COLLATE "C"    NOT NULL,
    recorded_at   BIGINT  NOT NULL
);

CREATE INDEX release_digests_by_version ON release_digests (version, environment);

-- Locks an operator takes (`cutover lock`): at most one per environment; a
-- locked environment refuses deploys. Apart from `locks`, which is the
-- deployment lock one running deployment holds. `until` NULL: until
-- `cutover unlock`.
CREATE TABLE operator_locks (
    environment TEXT COLLATE "C"    PRIMARY KEY,
    reason      TEXT COLLATE "C"    NOT NULL,
    locked_by   TEXT COLLATE "C"    NOT NULL,
    since       BIGINT  NOT NULL,
    until       BIGINT
);
