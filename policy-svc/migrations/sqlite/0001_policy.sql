-- policy-svc: apps, network zones, device assurance policies, policies and rules, assurance
-- failures (grace periods), decision events. Times are microseconds since the Unix epoch.
-- Resource details are JSON documents in `body`; names and keys the database must keep unique
-- are columns.

-- Bumped by every configuration change, in the same transaction; replicas poll it and reload.
-- Taking its row lock first also puts configuration changes in one line.
CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    client_id   TEXT NOT NULL UNIQUE,
    secret_hash TEXT,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE network_zones (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE assurance_policies (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE policies (
    id          TEXT PRIMARY KEY,
    policy_type TEXT NOT NULL,
    name        TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (policy_type, name)
);

CREATE TABLE rules (
    id        TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    body      TEXT NOT NULL
);
CREATE INDEX rules_policy ON rules (policy_id);

-- When a device was first seen failing an assurance policy: grace periods counted in days
-- start there, on every replica.
CREATE TABLE assurance_failures (
    device_id       TEXT NOT NULL,
    policy_id       TEXT NOT NULL,
    first_failed_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, policy_id)
);

CREATE TABLE decision_events (
    id             TEXT PRIMARY KEY, -- UUIDv7: time-ordered
    event_time     BIGINT NOT NULL,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    device_id      TEXT NOT NULL,
    client_address TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    reason_code    TEXT NOT NULL,
    reason         TEXT NOT NULL,
    matched        TEXT NOT NULL,    -- JSON array
    request_id     TEXT NOT NULL
);
CREATE INDEX decision_events_user ON decision_events (user_id, id);
CREATE INDEX decision_events_device ON decision_events (device_id, id);
