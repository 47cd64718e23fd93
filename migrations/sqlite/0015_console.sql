-- The operations console (/reports): its audit trail, and the indexes its searches page by.
--
-- Every action taken on the console (a payroll released, a statement uploaded, a run started,
-- a break resolved, an exception settled, a sign-in) is one row: who (the key and its client,
-- and the key's owner as shown), when, what, on what, why, and how it ended (done, refused,
-- failed). Rows are never updated or deleted. Ids are UUIDv7, so the id orders by time and
-- the page reads newest first by (client_id, id).
CREATE TABLE audit_log (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    reason     TEXT,
    outcome    TEXT NOT NULL CHECK (outcome IN ('done', 'refused', 'failed')),
    detail     TEXT,
    at         BIGINT NOT NULL
);
CREATE INDEX audit_log_client ON audit_log (client_id, id);
CREATE INDEX audit_log_subject ON audit_log (client_id, subject, id);

-- The payment search pages in id order (UUIDv7: creation order; a date range is an id range)
-- within one client and one criterion. A reference is found through the existing unique
-- (client_id, direction, reference); the others need one index each. Each costs every insert
-- of a payment, so only what the console searches by is indexed.
CREATE INDEX payments_client_payee ON payments (client_id, party_value, id);
CREATE INDEX payments_client_state ON payments (client_id, state, id);
CREATE INDEX payments_client_rail ON payments (client_id, rail, id);
CREATE INDEX payments_client_programme ON payments (client_id, json_extract(metadata, '$.programme'), id);

-- A payment's page reads its events (for the webhook deliveries) and its callbacks by payment.
CREATE INDEX events_payment ON events (payment_id);
CREATE INDEX callback_events_payment ON callback_events (payment_id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
