-- Reversals asked of a rail through the API (POST /v1/payments/{id}/reversals). The row (its id
-- is the rail's idempotency key for the reversal) is stored with its job before anything is
-- sent; at most one reversal of a payment is open or done at a time (a failed one allows another).

CREATE TABLE reversals (
    id                 TEXT PRIMARY KEY,
    payment_id         TEXT NOT NULL REFERENCES payments(id),
    client_id          TEXT NOT NULL REFERENCES clients(id),
    rail               TEXT NOT NULL,
    status             TEXT NOT NULL,
    reason             TEXT,
    rail_reference     TEXT,
    failure_code       TEXT,
    failure_reason     TEXT,
    failure_rail_code  TEXT,
    last_error         TEXT,
    exception          TEXT,
    deadline_at        BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX reversals_payment ON reversals (payment_id);
CREATE UNIQUE INDEX reversals_one_live ON reversals (payment_id) WHERE status <> 'failed';

-- openIMIS as a delivery target: an endpoint of format 'openimis' receives payroll results as
-- openIMIS's `POST /api/payroll/send_callback_to_openimis/` expects them, with the client's
-- openIMIS token; a payroll names the openIMIS payroll it pays (the id openIMIS knows it by).
ALTER TABLE webhook_endpoints ADD COLUMN format TEXT NOT NULL DEFAULT 'standard';
ALTER TABLE webhook_endpoints ADD COLUMN auth_token TEXT;
ALTER TABLE payrolls ADD COLUMN openimis_payroll_id TEXT;
