-- A settlement's payment is checked by the statement that writes it (a join on the payment,
-- within the run's client), not by a foreign key: a million-line run writes a million
-- settlements, each checked twice otherwise. SQLite drops a foreign key by rebuilding the
-- table.
CREATE TABLE recon_settlements_0018 (
    payment_id    TEXT PRIMARY KEY,
    run_id        TEXT NOT NULL,
    statement_id  TEXT NOT NULL,
    line_no       BIGINT NOT NULL,
    rule          TEXT NOT NULL,
    amount_minor  BIGINT NOT NULL,
    fee_minor     BIGINT NOT NULL,
    currency      TEXT NOT NULL,
    settled_on    TEXT,
    at            BIGINT NOT NULL,
    client_id     TEXT
);
INSERT INTO recon_settlements_0018 (payment_id, run_id, statement_id, line_no, rule,
    amount_minor, fee_minor, currency, settled_on, at, client_id)
SELECT payment_id, run_id, statement_id, line_no, rule, amount_minor, fee_minor, currency,
    settled_on, at, client_id FROM recon_settlements;
DROP TABLE recon_settlements;
ALTER TABLE recon_settlements_0018 RENAME TO recon_settlements;
