-- pki-svc: certificate authorities, SCEP integrations, the certificate inventory, revocations.
-- Times are microseconds since the Unix epoch.

-- A CA made by this deployment: its certificate and its key sealed with `ca_encryption_key`.
CREATE TABLE certificate_authorities (
    name            TEXT PRIMARY KEY,
    certificate_der BLOB NOT NULL,
    sealed_key      BLOB NOT NULL,
    created_at      BIGINT NOT NULL
);

-- Each CA's current CRL, reissued on every revocation and before it runs out.
CREATE TABLE crls (
    ca         TEXT PRIMARY KEY,
    crl_number BIGINT NOT NULL,
    crl_der    BLOB NOT NULL,
    issued_at  BIGINT NOT NULL
);

CREATE TABLE scep_integrations (
    name                 TEXT PRIMARY KEY,
    display_name         TEXT NOT NULL,
    challenge_type       TEXT NOT NULL,
    secret_salt          BLOB NOT NULL,
    secret_hash          BLOB NOT NULL, -- SHA-256(salt || secret)
    subject_pattern      TEXT NOT NULL,
    lifetime_secs        BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    secret_rotated_at    BIGINT NOT NULL
);

-- Every certificate a CA of ours issued. `id` is a UUIDv7, so id order is issue order.
CREATE TABLE certificates (
    id                 TEXT PRIMARY KEY,
    serial_number      TEXT NOT NULL UNIQUE, -- lower-case hex
    issuer_ca          TEXT NOT NULL,
    integration        TEXT NOT NULL,
    transaction_id     TEXT NOT NULL,
    subject            TEXT NOT NULL,
    sha256_fingerprint TEXT NOT NULL,
    certificate_der    BLOB NOT NULL,
    not_before         BIGINT NOT NULL,
    not_after          BIGINT NOT NULL,
    issued_at          BIGINT NOT NULL,
    status             TEXT NOT NULL,        -- VALID or REVOKED
    revocation_reason  BIGINT NOT NULL,
    revoked_at         BIGINT,
    bound_device_id    TEXT,
    renewed_serial     TEXT NOT NULL
);
CREATE INDEX certificates_transaction ON certificates (integration, transaction_id);
CREATE INDEX certificates_bound_device ON certificates (bound_device_id);
CREATE INDEX certificates_revoked ON certificates (issuer_ca, status, revoked_at);

-- RevokeCertificate calls already carried out, by idempotency key.
CREATE TABLE revocation_requests (
    idempotency_key TEXT PRIMARY KEY,
    serial_numbers  TEXT NOT NULL, -- JSON array
    created_at      BIGINT NOT NULL
);
