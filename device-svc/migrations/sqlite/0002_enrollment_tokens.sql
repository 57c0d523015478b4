-- Single-use tokens an operator made so an agent can enroll for a user without a browser
-- sign-in. Only the token's SHA-256 is kept. Times are microseconds since the Unix epoch.
CREATE TABLE enrollment_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    device_id  TEXT
);
