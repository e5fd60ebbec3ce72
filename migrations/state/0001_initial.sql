-- cutover state store, first schema.
--
-- Times are INTEGER unix milliseconds (UTC). Enumerations are lower-case TEXT
-- guarded by CHECK constraints. JSON documents are TEXT. The SQL sticks to
-- what SQLite and PostgreSQL both accept, apart from the integer key type.

-- An immutable version of the app.
CREATE TABLE releases (
    app         TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    config_hash TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (app, version)
);

-- Moving one environment from one release to another: a persisted state machine.
CREATE TABLE deployments (
    id               INTEGER PRIMARY KEY,
    environment      TEXT    NOT NULL,
    version          TEXT    NOT NULL,
    previous_version TEXT,
    strategy         TEXT    NOT NULL,
    kind             TEXT    NOT NULL
        CHECK (kind IN ('deploy', 'rollback')),
    state            TEXT    NOT NULL
        CHECK (state IN ('running', 'succeeded', 'failed', 'rolled_back', 'interrupted')),
    reason           TEXT,
    requested_by     TEXT    NOT NULL,
    started_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    -- A deployment is finished exactly when it is no longer running.
    CHECK ((state = 'running' AND finished_at IS NULL)
        OR (state <> 'running' AND finished_at IS NOT NULL))
);

CREATE INDEX deployments_by_environment ON deployments (environment, id);
CREATE INDEX deployments_running ON deployments (id) WHERE state = 'running';

-- The history of a deployment, in the order it happened.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    at            INTEGER NOT NULL,
    kind          TEXT    NOT NULL,
    message       TEXT    NOT NULL,
    data          TEXT    NOT NULL
);

CREATE INDEX events_by_deployment ON events (deployment_id, id);

-- The deployment lock: at most one row, hence one holder, per environment.
CREATE TABLE locks (
    environment TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    purpose     TEXT    NOT NULL,
    since       INTEGER NOT NULL
);

-- Which version serves each environment, and which one a rollback returns to.
CREATE TABLE serving (
    environment      TEXT    PRIMARY KEY,
    current_version  TEXT    NOT NULL,
    previous_version TEXT,
    since            INTEGER NOT NULL
);

-- Instances the daemon runs, so that a restarted daemon can adopt them.
CREATE TABLE instances (
    instance_id TEXT    PRIMARY KEY,
    environment TEXT    NOT NULL,
    service     TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    state       TEXT    NOT NULL
        CHECK (state IN ('starting', 'ready', 'serving', 'idle', 'draining', 'stopped', 'failed')),
    driver      TEXT    NOT NULL,
    handle      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE INDEX instances_by_environment ON instances (environment, service);
