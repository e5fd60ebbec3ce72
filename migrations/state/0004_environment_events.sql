-- Events of an environment that belong to no deployment: the edge's
-- certificates (loaded, reloaded, a broken file kept out, issued, renewed, a
-- failed renewal). Newest read first, per environment. Never key material.
CREATE TABLE environment_events (
    id          INTEGER PRIMARY KEY,
    environment TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    data        TEXT    NOT NULL
);

CREATE INDEX environment_events_by_environment ON environment_events (environment, id);
