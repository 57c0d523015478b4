-- session-svc: users, groups, authenticators, sessions, revocations, authorization codes, events.
-- Times are microseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS users (
    id              TEXT PRIMARY KEY,
    login           TEXT NOT NULL,
    login_key       TEXT NOT NULL UNIQUE, -- lower-cased login
    email           TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    profile         TEXT NOT NULL,        -- JSON object of strings
    status          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_login_at   INTEGER,
    password_hash   TEXT,
    failed_attempts INTEGER NOT NULL,
    locked_until    INTEGER,
    totp_seed       BLOB,                 -- AES-256-GCM sealed
    totp_last_step  INTEGER
);
CREATE INDEX IF NOT EXISTS users_status_id ON users (status, id);

CREATE TABLE IF NOT EXISTS groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS group_members (
    group_id   TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX IF NOT EXISTS group_members_user ON group_members (user_id, group_id);

CREATE TABLE IF NOT EXISTS sessions (
    id                   TEXT PRIMARY KEY,
    token_hash           TEXT NOT NULL UNIQUE, -- SHA-256 of the token, hex
    user_id              TEXT NOT NULL,
    device_id            TEXT NOT NULL,
    amr                  TEXT NOT NULL,        -- space-separated
    device_authenticator INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    last_active_at       INTEGER NOT NULL,
    idle_timeout_us      INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    revoked_at           INTEGER,
    revocation_reason    TEXT NOT NULL,
    client_ip            TEXT NOT NULL,
    user_agent           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id, id);
CREATE INDEX IF NOT EXISTS sessions_device ON sessions (device_id, id);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires_at);

-- The revocation feed: one row per ended session, in commit order.
CREATE TABLE IF NOT EXISTS revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    revoked_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revocations_revoked_at ON revocations (revoked_at);

-- Feed rows up to here have been pruned; a cursor before it cannot resume without a gap.
CREATE TABLE IF NOT EXISTS revocation_horizon (
    singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
    pruned_through INTEGER NOT NULL
);
INSERT INTO revocation_horizon (singleton, pruned_through) VALUES (1, 0) ON CONFLICT DO NOTHING;

-- RevokeSessions calls already applied, by idempotency key.
CREATE TABLE IF NOT EXISTS applied_revocations (
    idempotency_key TEXT PRIMARY KEY,
    revoked_count   INTEGER NOT NULL,
    applied_at      INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS authorization_codes (
    code_hash             TEXT PRIMARY KEY,
    session_id            TEXT NOT NULL,
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    nonce                 TEXT NOT NULL,
    scopes                TEXT NOT NULL,
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL,
    redeemed_at           INTEGER
);
CREATE INDEX IF NOT EXISTS authorization_codes_expires ON authorization_codes (expires_at);

CREATE TABLE IF NOT EXISTS events (
    id         TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    actor      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    details    TEXT NOT NULL -- JSON object of strings
);
CREATE INDEX IF NOT EXISTS events_user ON events (user_id, id);
