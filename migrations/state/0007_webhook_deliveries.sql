-- Notifications (issue 16): signed webhooks and Slack messages about what
-- happens in the history, queued here and delivered by the daemon.
--
-- `notify_cursors`: how far the notifier has read each source: the last
-- `events.id` and `environment_events.id` it turned into deliveries, and for
-- `deployments` the highest id at or below which no conclusion is notified
-- (deployments that ended before notifications were first read).
-- A cursor moves in the same transaction as the deliveries it produced.
CREATE TABLE notify_cursors (
    source  TEXT    PRIMARY KEY
        CHECK (source IN ('events', 'environment_events', 'deployments')),
    last_id INTEGER NOT NULL
);

-- Deployments whose conclusion (succeeded, failed, rolled back) has been
-- turned into deliveries.
CREATE TABLE notify_concluded (
    deployment_id INTEGER PRIMARY KEY
);

-- One delivery of one event to one endpoint. `message_id` is the
-- `webhook-id` header: the same on every attempt. `body` is the JSON sent
-- (never a secret: the signing key and Slack's URL stay in the config).
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    message_id      TEXT    NOT NULL UNIQUE,
    target          TEXT    NOT NULL
        CHECK (target IN ('webhook', 'slack')),
    endpoint        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    state           TEXT    NOT NULL
        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    finished_at     INTEGER,
    CHECK ((state = 'pending' AND finished_at IS NULL)
        OR (state <> 'pending' AND finished_at IS NOT NULL))
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id)
    WHERE state = 'pending';
