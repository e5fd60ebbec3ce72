-- The rollout engine's plan and last persisted state of a deployment (JSON),
-- so a restarted daemon can resume or roll back what it was doing.
CREATE TABLE rollouts (
    deployment_id INTEGER PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
    plan          TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL
);
