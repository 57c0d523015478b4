-- session-svc: users, groups, authenticators, sessions, revocations, authorization codes, events.
-- Times are microseconds since the Unix epoch.
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    login           TEXT NOT NULL,
    login_key       TEXT NOT NULL UNIQUE, -- lower-cased login
    email           TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    profile         TEXT NOT NULL,        -- JSON object of strings
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_login_at   BIGINT,
    password_hash   TEXT,
    failed_attempts BIGINT NOT NULL,
    locked_until    BIGINT,
    totp_seed       BYTEA,                 -- AES-256-GCM sealed
    totp_last_step  BIGINT
);
CREATE INDEX users_status_id ON users (status, id);

CREATE TABLE groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id   TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id, group_id);

CREATE TABLE sessions (
    id                   TEXT PRIMARY KEY,
    token_hash           TEXT NOT NULL UNIQUE, -- SHA-256 of the token, hex
    user_id              TEXT NOT NULL,
    device_id            TEXT NOT NULL,
    amr                  TEXT NOT NULL,        -- space-separated
    device_authenticator BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    last_active_at       BIGINT NOT NULL,
    idle_timeout_us      BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL,
    revoked_at           BIGINT,
    revocation_reason    TEXT NOT NULL,
    client_ip            TEXT NOT NULL,
    user_agent           TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id, id);
CREATE INDEX sessions_device ON sessions (device_id, id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- The revocation feed: one row per ended session, in commit order.
CREATE TABLE revocations (
    seq        BIGSERIAL PRIMARY KEY,
    session_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revocations_revoked_at ON revocations (revoked_at);

-- Feed rows up to here have been pruned; a cursor before it cannot resume without a gap.
CREATE TABLE revocation_horizon (
    singleton      BIGINT PRIMARY KEY CHECK (singleton = 1),
    pruned_through BIGINT NOT NULL
);
INSERT INTO revocation_horizon (singleton, pruned_through) VALUES (1, 0) ON CONFLICT DO NOTHING;

-- RevokeSessions calls already applied, by idempotency key.
CREATE TABLE applied_revocations (
    idempotency_key TEXT PRIMARY KEY,
    revoked_count   BIGINT NOT NULL,
    applied_at      BIGINT NOT NULL
);

CREATE TABLE authorization_codes (
    code_hash             TEXT PRIMARY KEY,
    session_id            TEXT NOT NULL,
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    nonce                 TEXT NOT NULL,
    scopes                TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    redeemed_at           BIGINT
);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);

CREATE TABLE events (
    id         TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    actor      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    details    TEXT NOT NULL -- JSON object of strings
);
CREATE INDEX events_user ON events (user_id, id);
