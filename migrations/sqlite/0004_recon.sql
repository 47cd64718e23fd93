-- Reconciliation: uploaded statements and their lines, runs, settlements and breaks.
-- Dates of statement lines are ISO text (YYYY-MM-DD), so they compare as text on both stores.

CREATE TABLE statements (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL REFERENCES clients(id),
    content_hash  TEXT NOT NULL,
    format        TEXT NOT NULL,
    rail          TEXT,
    byte_size     BIGINT NOT NULL,
    status        TEXT NOT NULL,
    line_count    BIGINT NOT NULL DEFAULT 0,
    error_count   BIGINT NOT NULL DEFAULT 0,
    errors        TEXT NOT NULL DEFAULT '[]',
    headers       TEXT NOT NULL DEFAULT '[]',
    period_from   TEXT,
    period_to     TEXT,
    uploaded_by   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (client_id, content_hash)
);

-- What identifies a statement at the bank (account, statement id, sequence): a re-delivery with
-- other bytes is still the same statement.
CREATE TABLE statement_identities (
    client_id     TEXT NOT NULL,
    identity      TEXT NOT NULL,
    statement_id  TEXT NOT NULL REFERENCES statements(id),
    PRIMARY KEY (client_id, identity)
);

CREATE TABLE statement_lines (
    statement_id          TEXT NOT NULL REFERENCES statements(id),
    line_no               BIGINT NOT NULL,
    section               BIGINT NOT NULL,
    entry                 BIGINT NOT NULL,
    source_line           BIGINT NOT NULL,
    byte_offset           BIGINT NOT NULL,
    status                TEXT NOT NULL,
    line_date             TEXT,
    booking_date          TEXT,
    value_date            TEXT,
    amount_minor          BIGINT NOT NULL,
    instructed_minor      BIGINT,
    currency              TEXT NOT NULL,
    direction             TEXT NOT NULL,
    reference             TEXT,
    rail_transaction_id   TEXT,
    receipt               TEXT,
    creditor_reference    TEXT,
    remittance            TEXT,
    bank_entry_ref        TEXT,
    counterparty_name     TEXT,
    counterparty_account  TEXT,
    fee_minor             BIGINT,
    bank_transaction_code TEXT,
    extra                 TEXT,
    matched_run           TEXT,
    PRIMARY KEY (statement_id, line_no)
);
CREATE INDEX statement_lines_date ON statement_lines (line_date);

CREATE TABLE recon_runs (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL REFERENCES clients(id),
    statement_id TEXT,
    date_from    TEXT,
    date_to      TEXT,
    dry_run      BIGINT NOT NULL,
    rules        TEXT NOT NULL,
    status       TEXT NOT NULL,
    report       TEXT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX recon_runs_client ON recon_runs (client_id, created_at);

-- A payment proven by a statement line: settled, once.
CREATE TABLE recon_settlements (
    payment_id    TEXT PRIMARY KEY REFERENCES payments(id),
    run_id        TEXT NOT NULL,
    statement_id  TEXT NOT NULL,
    line_no       BIGINT NOT NULL,
    rule          TEXT NOT NULL,
    amount_minor  BIGINT NOT NULL,
    fee_minor     BIGINT NOT NULL,
    currency      TEXT NOT NULL,
    settled_on    TEXT,
    at            BIGINT NOT NULL
);

CREATE TABLE recon_breaks (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL REFERENCES clients(id),
    run_id        TEXT,
    dedupe_key    TEXT NOT NULL,
    kind          TEXT NOT NULL,
    severity      TEXT NOT NULL,
    status        TEXT NOT NULL,
    owner         TEXT,
    note          TEXT NOT NULL,
    detail        TEXT NOT NULL,
    payment_id    TEXT,
    statement_id  TEXT,
    line_no       BIGINT,
    amount_minor  BIGINT,
    currency      TEXT,
    rail          TEXT,
    programme     TEXT,
    opened_at     BIGINT NOT NULL,
    resolution    TEXT,
    reason        TEXT,
    resolved_by   TEXT,
    resolved_at   BIGINT,
    entries       TEXT,
    UNIQUE (client_id, dedupe_key)
);
CREATE INDEX recon_breaks_status ON recon_breaks (client_id, status, opened_at);
