-- PostgreSQL mirror of the file of the same name in migrations/state/:
-- BIGINT for integers and times, identity columns for ids, TEXT COLLATE "C"
-- so that text sorts by its bytes as in SQLite. Keep both sets equal in
-- meaning (src/store/tests/schema.rs compares them).
-- The rollout engine's plan and last persisted state of a deployment (JSON),
-- so a restarted daemon can resume or roll back what it was doing.
CREATE TABLE rollouts (
    deployment_id BIGINT  PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
    plan          TEXT COLLATE "C"    NOT NULL,
    state         TEXT COLLATE "C"    NOT NULL,
    updated_at    BIGINT  NOT NULL
);

-- SQLite's two JSON functions the store's queries use, for the same SQL on
-- PostgreSQL: `json_extract(doc, '$.a.b')` as text (NULL when absent) and
-- `json_array_length(doc, '$.a.b')` (0 when not an array, NULL when absent).
-- Paths are `$.` followed by names joined by dots.
CREATE FUNCTION json_extract(doc TEXT, path TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT doc::jsonb #>> string_to_array(substr(path, 3), '.')
$$;

CREATE FUNCTION json_array_length(doc TEXT, path TEXT) RETURNS INTEGER
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v IS NULL THEN NULL
                WHEN jsonb_typeof(v) = 'array' THEN jsonb_array_length(v)
                ELSE 0 END
    FROM (SELECT doc::jsonb #> string_to_array(substr(path, 3), '.') AS v) AS found
$$;
