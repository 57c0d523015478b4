-- pki-svc: certificate authorities, SCEP integrations, the certificate inventory, revocations.
-- Times are microseconds since the Unix epoch.

-- A CA made by this deployment: its certificate and its key sealed with `ca_encryption_key`.
CREATE TABLE certificate_authorities (
    name            TEXT PRIMARY KEY,
    certificate_der BYTEA NOT NULL,
    sealed_key      BYTEA NOT NULL,
    created_at      BIGINT NOT NULL
);

-- Each CA's current CRL, reissued on every revocation and before it runs out.
CREATE TABLE crls (
    ca         TEXT PRIMARY KEY,
    crl_number BIGINT NOT NULL,
    crl_der    BYTEA NOT NULL,
    issued_at  BIGINT NOT NULL
);

CREATE TABLE scep_integrations (
    name                 TEXT PRIMARY KEY,
    display_name         TEXT NOT NULL,
    challenge_type       TEXT NOT NULL,
    secret_salt          BYTEA NOT NULL,
    secret_hash          BYTEA NOT NULL, -- SHA-256(salt || secret)
    subject_pattern      TEXT NOT NULL,
    san_pattern          TEXT NOT NULL,
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
    certificate_der    BYTEA NOT NULL,
    not_before         BIGINT NOT NULL,
    not_after          BIGINT NOT NULL,
    issued_at          BIGINT NOT NULL,
    status             TEXT NOT NULL,        -- VALID or REVOKED
    revocation_reason  BIGINT NOT NULL,
    revoked_at         BIGINT,
    bound_device_id    TEXT,
    renewed_serial     TEXT NOT NULL,
    last_used_at       BIGINT                -- last successful management attestation
);
-- One certificate per SCEP transaction: a client retrying gets the one it was issued.
CREATE UNIQUE INDEX certificates_transaction ON certificates (integration, transaction_id);
-- Partial indexes: a new certificate (unbound, not revoked) adds no entry to them, which keeps
-- enrollment's INSERT cheap. The unused-certificate sweep scans; it runs every few minutes.
CREATE INDEX certificates_bound_device ON certificates (bound_device_id) WHERE bound_device_id IS NOT NULL;
CREATE INDEX certificates_revoked ON certificates (issuer_ca, revoked_at) WHERE status = 'REVOKED';

-- RevokeCertificate calls already carried out, by idempotency key.
CREATE TABLE revocation_requests (
    idempotency_key TEXT PRIMARY KEY,
    serial_numbers  TEXT NOT NULL, -- JSON array
    created_at      BIGINT NOT NULL
);

-- One-time challenges of dynamic-challenge SCEP integrations, stored as their SHA-256.
CREATE TABLE dynamic_challenges (
    challenge_hash TEXT PRIMARY KEY,
    integration    TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);
CREATE INDEX dynamic_challenges_expiry ON dynamic_challenges (expires_at);

-- CAs of the customer's own PKI whose certificates may attest, with their current CRL.
CREATE TABLE trusted_cas (
    id               TEXT PRIMARY KEY,
    display_name     TEXT NOT NULL,
    certificates_pem TEXT NOT NULL,
    subject          TEXT NOT NULL,
    crl_url          TEXT NOT NULL,
    crl_der          BYTEA,
    crl_this_update  BIGINT,
    crl_next_update  BIGINT,
    crl_fetch_error  TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);

-- Which device a customer-CA certificate attests for (ours are bound in `certificates`).
CREATE TABLE external_certificate_bindings (
    issuer_ca     TEXT NOT NULL,
    serial_number TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    bound_at      BIGINT NOT NULL,
    PRIMARY KEY (issuer_ca, serial_number)
);

-- Mobile MDMs and their management secrets, sealed with `ca_encryption_key` (verifying an HMAC
-- needs the secret itself).
CREATE TABLE mobile_integrations (
    id                TEXT PRIMARY KEY,
    provider_name     TEXT NOT NULL,
    enrollment_link   TEXT NOT NULL,
    sealed_secret     BYTEA NOT NULL,
    created_at        BIGINT NOT NULL,
    secret_rotated_at BIGINT NOT NULL
);
