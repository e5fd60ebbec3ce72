-- Named API tokens (issue 15): only the SHA-256 of each token is kept (a
-- token is 32 random bytes, so a plain hash cannot be guessed back). A
-- revoked token keeps its row, so its name is never reused and the audit
-- log's "who" stays unambiguous.
CREATE TABLE api_tokens (
    name         TEXT    PRIMARY KEY,
    hash         TEXT    NOT NULL UNIQUE,
    role         TEXT    NOT NULL CHECK (role IN ('viewer', 'deployer', 'approver', 'admin')),
    created_at   INTEGER NOT NULL,
    created_by   TEXT    NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);

-- The tamper-evident audit log: each row's hash (SHA-256, hex) covers its
-- content and the previous row's hash (`src/store/audit.rs` says exactly
-- how). Rows are appended in one immediate transaction with the read of the
-- previous hash, and never updated or deleted by cutover.
CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    at            INTEGER NOT NULL,
    who           TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    environment   TEXT,
    deployment_id INTEGER,
    target        TEXT,
    details       TEXT    NOT NULL,
    prev_hash     TEXT    NOT NULL,
    hash          TEXT    NOT NULL
);

CREATE INDEX audit_log_by_time ON audit_log (at);
