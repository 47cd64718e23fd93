-- Clients, keys, payments, their history, idempotency keys, attempts, jobs and callbacks.
-- Money is integer minor units; ids are UUID text; times are microseconds since the Unix epoch (UTC).

CREATE TABLE clients (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES clients(id),
    prefix      TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,
    label       TEXT,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE payments (
    id                 TEXT PRIMARY KEY,
    client_id          TEXT NOT NULL REFERENCES clients(id),
    direction          TEXT NOT NULL,
    mode               TEXT,
    state              TEXT NOT NULL,
    reference          TEXT NOT NULL,
    amount_minor       BIGINT NOT NULL CHECK (amount_minor > 0),
    currency           TEXT NOT NULL,
    party_type         TEXT NOT NULL,
    party_value        TEXT NOT NULL,
    party_name         TEXT,
    narrative          TEXT,
    rail               TEXT,
    metadata           TEXT NOT NULL,
    payment_reference  TEXT UNIQUE,
    failure_code       TEXT,
    failure_reason     TEXT,
    failure_rail_code  TEXT,
    receipt            TEXT,
    rail_reference     TEXT,
    exception          TEXT,
    conflict           TEXT,
    payroll_id         TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (client_id, direction, reference)
);
CREATE INDEX payments_client_id ON payments (client_id, id);
CREATE INDEX payments_state ON payments (state);

CREATE TABLE payment_transitions (
    payment_id  TEXT NOT NULL REFERENCES payments(id),
    seq         BIGINT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    cause       TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (payment_id, seq)
);

CREATE TABLE idempotency_keys (
    client_id     TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        BIGINT,
    response      TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (client_id, key)
);

CREATE TABLE attempts (
    id              TEXT PRIMARY KEY,
    payment_id      TEXT NOT NULL REFERENCES payments(id),
    rail            TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    status          TEXT NOT NULL,
    request_step    TEXT,
    request_body    BYTEA,
    rail_reference  TEXT,
    rail_state      TEXT,
    last_error      TEXT,
    deadline_at     BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (payment_id, seq)
);
CREATE INDEX attempts_rail_reference ON attempts (rail, rail_reference);

CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    payment_id   TEXT,
    attempt_id   TEXT,
    payload      TEXT,
    run_at       BIGINT NOT NULL,
    tries        BIGINT NOT NULL DEFAULT 0,
    version      BIGINT NOT NULL DEFAULT 0,
    lease_until  BIGINT,
    leased_by    TEXT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (run_at);

CREATE TABLE callbacks (
    id            TEXT PRIMARY KEY,
    rail          TEXT NOT NULL,
    method        TEXT NOT NULL,
    path          TEXT NOT NULL,
    headers       TEXT NOT NULL,
    body          BYTEA NOT NULL,
    received_at   BIGINT NOT NULL,
    verdict       TEXT NOT NULL,
    reason        TEXT
);

CREATE TABLE callback_events (
    rail          TEXT NOT NULL,
    callback_id   TEXT NOT NULL,
    callback_row  TEXT NOT NULL,
    payment_id    TEXT,
    effect        TEXT NOT NULL,
    at            BIGINT NOT NULL,
    PRIMARY KEY (rail, callback_id)
);

CREATE TABLE conflicts (
    id           TEXT PRIMARY KEY,
    payment_id   TEXT NOT NULL REFERENCES payments(id),
    held_state   TEXT NOT NULL,
    claimed      TEXT NOT NULL,
    source       TEXT NOT NULL,
    detail       TEXT,
    at           BIGINT NOT NULL
);
CREATE INDEX conflicts_payment ON conflicts (payment_id);

-- One driving job per payment: the dispatcher looks at the payment and does what is next.
CREATE UNIQUE INDEX jobs_one_per_payment ON jobs (payment_id) WHERE kind = 'payment';
