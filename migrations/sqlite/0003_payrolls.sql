-- Payrolls: many disbursements submitted as one file. Items are rows of `payments` with
-- `payroll_id` set; the payroll row holds what belongs to the whole file.

CREATE TABLE payrolls (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL REFERENCES clients(id),
    name          TEXT NOT NULL,
    -- importing (items being stored) | held (waiting for release) | released | completed
    status        TEXT NOT NULL,
    source        TEXT NOT NULL,
    item_count    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    released_at   BIGINT,
    completed_at  BIGINT
);
CREATE INDEX payrolls_client ON payrolls (client_id, id);

-- Progress counts per state and "is any item still open?" without scanning the payroll.
CREATE INDEX payments_payroll_state ON payments (payroll_id, state);
