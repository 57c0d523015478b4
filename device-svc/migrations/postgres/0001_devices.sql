-- The device registry. Times are microseconds since the Unix epoch; flags are 0/1.
CREATE TABLE devices (
    id                      TEXT PRIMARY KEY,
    status                  TEXT NOT NULL,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    last_seen_at            BIGINT,
    display_name            TEXT NOT NULL,
    platform                TEXT NOT NULL,
    manufacturer            TEXT NOT NULL,
    model                   TEXT NOT NULL,
    os_version              TEXT NOT NULL,
    serial_number           TEXT NOT NULL,
    udid                    TEXT NOT NULL,
    sid                     TEXT NOT NULL,
    imei                    TEXT NOT NULL,
    meid                    TEXT NOT NULL,
    tpm_public_key_hash     TEXT NOT NULL,
    secure_hardware_present BIGINT NOT NULL,
    disk_encryption_type    TEXT NOT NULL,
    screen_lock_type        TEXT NOT NULL,
    integrity_jailbreak     BIGINT NOT NULL,
    managed                 BIGINT NOT NULL,
    management_source       TEXT NOT NULL,
    app_instance_id         TEXT NOT NULL UNIQUE,
    signals                 TEXT NOT NULL
);
CREATE INDEX devices_platform_id ON devices (platform, id);
CREATE INDEX devices_status_id ON devices (status, id);
CREATE INDEX devices_managed_id ON devices (managed, id);
CREATE INDEX devices_created_at ON devices (created_at);
CREATE INDEX devices_last_seen_at ON devices (last_seen_at);

-- Lower-cased prefixes of searchable identifiers, one row per (term, device).
CREATE TABLE device_search (
    term      TEXT COLLATE "C" NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    PRIMARY KEY (term, device_id)
);
CREATE INDEX device_search_device ON device_search (device_id);

CREATE TABLE device_users (
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, user_id)
);
CREATE INDEX device_users_user ON device_users (user_id, device_id);

CREATE TABLE device_keys (
    kid                TEXT PRIMARY KEY,
    device_id          TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    user_id            TEXT NOT NULL,
    purpose            TEXT NOT NULL,
    hardware_protected BIGINT NOT NULL,
    x                  TEXT NOT NULL,
    y                  TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    -- Set when deactivation or user removal retires the key; kept so an assertion signed with
    -- it is refused for the right reason (DEVICE_DEACTIVATED) rather than as an unknown key.
    removed_at         BIGINT
);
CREATE INDEX device_keys_device ON device_keys (device_id);

CREATE TABLE device_events (
    id         TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    actor      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX device_events_device ON device_events (device_id, id);

-- Effects on other services that must not be lost, written in the same transaction as the
-- change that causes them and delivered until acknowledged.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    payload         BYTEA NOT NULL,
    request_id      TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX outbox_pending ON outbox (delivered_at, next_attempt_at);

-- FastPass assertion ids already accepted, kept until the assertion would have expired.
CREATE TABLE assertion_replays (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX assertion_replays_expiry ON assertion_replays (expires_at);
