-- What a deployment released (issue 15, part C): the release digest and the
-- per-service digests it combines, one row per deployment of kind deploy.
-- `services` is JSON: { SERVICE: { "digest": HEX, "parts": [ { "kind":
-- "executable" | "artifact" | "image", "name": TEXT, "sha256": HEX } ] } }.
-- No foreign key: the row outlives nothing, and a rebuilt deployments table
-- does not cascade into it.
CREATE TABLE release_digests (
    deployment_id INTEGER PRIMARY KEY,
    environment   TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    digest        TEXT    NOT NULL,
    services      TEXT    NOT NULL,
    recorded_at   INTEGER NOT NULL
);

CREATE INDEX release_digests_by_version ON release_digests (version, environment);

-- Locks an operator takes (`cutover lock`): at most one per environment; a
-- locked environment refuses deploys. Apart from `locks`, which is the
-- deployment lock one running deployment holds. `until` NULL: until
-- `cutover unlock`.
CREATE TABLE operator_locks (
    environment TEXT    PRIMARY KEY,
    reason      TEXT    NOT NULL,
    locked_by   TEXT    NOT NULL,
    since       INTEGER NOT NULL,
    until       INTEGER
);
