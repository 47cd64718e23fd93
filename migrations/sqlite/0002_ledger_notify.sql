-- The ledger (double entry, two-phase transfers, balances derived from entries) and the
-- notifications to the core (events outbox, webhook endpoints, deliveries and their tries).

-- One currency per account. The id is derived from (code, currency) so a posting can create
-- the account it needs without reading it first.
CREATE TABLE ledger_accounts (
    id            TEXT PRIMARY KEY,
    code          TEXT NOT NULL,
    currency      TEXT NOT NULL,
    client_id     TEXT,
    kind          TEXT NOT NULL,
    normal_side   TEXT NOT NULL CHECK (normal_side IN ('debit', 'credit')),
    -- 1: the balance on its normal side may never go below zero.
    non_negative  BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (code, currency)
);
CREATE INDEX ledger_accounts_client ON ledger_accounts (client_id, code);

-- Immutable. A pending transfer is resolved once, by a posting or a voiding transfer that
-- names it; a reversal is a new transfer that names the one it reverses. Money that belongs
-- to no payment (to suspense) is keyed by what brought it (`ext_key`, e.g. the callback).
CREATE TABLE ledger_transfers (
    id              TEXT PRIMARY KEY,
    payment_id      TEXT REFERENCES payments(id),
    ext_key         TEXT UNIQUE,
    phase           TEXT NOT NULL CHECK (phase IN ('pending', 'posted', 'voided', 'reversal')),
    client_id       TEXT,
    debit_account   TEXT NOT NULL REFERENCES ledger_accounts(id),
    credit_account  TEXT NOT NULL REFERENCES ledger_accounts(id),
    amount_minor    BIGINT NOT NULL CHECK (amount_minor > 0),
    currency        TEXT NOT NULL,
    pending_id      TEXT UNIQUE REFERENCES ledger_transfers(id),
    reverses_id     TEXT UNIQUE REFERENCES ledger_transfers(id),
    cause           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (payment_id, phase),
    CHECK (debit_account <> credit_account),
    CHECK (payment_id IS NOT NULL OR ext_key IS NOT NULL)
);

-- What each transfer did to each account's four balances (signed deltas: posting a pending
-- transfer moves its amount from pending to posted). Balances are sums over these rows, so no
-- payment waits on a shared balance row.
CREATE TABLE ledger_entries (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    transfer_id      TEXT NOT NULL REFERENCES ledger_transfers(id),
    account_id       TEXT NOT NULL REFERENCES ledger_accounts(id),
    debits_pending   BIGINT NOT NULL,
    debits_posted    BIGINT NOT NULL,
    credits_pending  BIGINT NOT NULL,
    credits_posted   BIGINT NOT NULL,
    at               BIGINT NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, seq);
CREATE INDEX ledger_entries_transfer ON ledger_entries (transfer_id);

-- The events outbox. `tx` is 0 here: SQLite has one writer, so `seq` is already commit order
-- and a cursor never skips a late commit.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    tx           BIGINT NOT NULL DEFAULT 0,
    id           TEXT NOT NULL UNIQUE,
    client_id    TEXT NOT NULL REFERENCES clients(id),
    type         TEXT NOT NULL,
    payment_id   TEXT,
    payroll_id   TEXT,
    data         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX events_client ON events (client_id, tx, seq);

CREATE TABLE webhook_endpoints (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL REFERENCES clients(id),
    url          TEXT NOT NULL,
    description  TEXT,
    event_types  TEXT,
    secret       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    deleted_at   BIGINT
);
CREATE INDEX webhook_endpoints_client ON webhook_endpoints (client_id);

-- One delivery per (endpoint, event). `order_key` groups the deliveries that must arrive in
-- order (one payment's events); `event_seq` is their order.
CREATE TABLE webhook_deliveries (
    id            TEXT PRIMARY KEY,
    event_seq     BIGINT NOT NULL,
    endpoint_id   TEXT NOT NULL REFERENCES webhook_endpoints(id),
    event_id      TEXT NOT NULL REFERENCES events(id),
    order_key     TEXT NOT NULL,
    -- The durable job that sends it (woken when the delivery before it is done).
    job_id        TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'abandoned')),
    tries         BIGINT NOT NULL DEFAULT 0,
    next_at       BIGINT NOT NULL,
    last_status   BIGINT,
    last_error    TEXT,
    created_at    BIGINT NOT NULL,
    delivered_at  BIGINT,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, order_key, event_seq);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, event_seq);

CREATE TABLE webhook_tries (
    delivery_id  TEXT NOT NULL REFERENCES webhook_deliveries(id),
    n            BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    status_code  BIGINT,
    error        TEXT,
    duration_ms  BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, n)
);
