-- Every table that grows with payments names the client it belongs to, so that a distributed
-- PostgreSQL can place each row with its client's payments (docs/scaling.md, "Distributing by
-- client"). Rows already stored take their client from what they belong to: the payment, the
-- webhook endpoint, the statement, the ledger transfer.
--
-- Left as they are, on purpose: the rails' inbox (`callbacks`, `inbound_posts`), written before
-- anything says whom a request concerns (one callback may answer attempts of several clients);
-- configuration and identity (`clients`, `api_keys`, `sessions`, `failure_rechecks`); the
-- running gateways (`instances`). Tables that had the column keep it (`payments`,
-- `idempotency_keys`, `events`, `webhook_endpoints`, `payrolls`, `statements`,
-- `statement_identities`, `recon_runs`, `recon_breaks`, `reversals`, `ledger_accounts`,
-- `ledger_transfers`).
--
-- No new index: nothing reads these tables by client alone yet (they are read by payment,
-- attempt, delivery or statement), and each index costs every insert.
--
-- SQLite adds a column only as nullable (without rebuilding the table); the gateway writes it
-- on every insert, and PostgreSQL's copy of this migration makes it NOT NULL where a row
-- always has a client.

ALTER TABLE payment_transitions ADD COLUMN client_id TEXT;
UPDATE payment_transitions SET client_id =
    (SELECT p.client_id FROM payments p WHERE p.id = payment_transitions.payment_id);

ALTER TABLE attempts ADD COLUMN client_id TEXT;
UPDATE attempts SET client_id = (SELECT p.client_id FROM payments p WHERE p.id = attempts.payment_id);

ALTER TABLE conflicts ADD COLUMN client_id TEXT;
UPDATE conflicts SET client_id = (SELECT p.client_id FROM payments p WHERE p.id = conflicts.payment_id);

ALTER TABLE recon_settlements ADD COLUMN client_id TEXT;
UPDATE recon_settlements SET client_id =
    (SELECT p.client_id FROM payments p WHERE p.id = recon_settlements.payment_id);

-- Jobs: a payment's (payment, confirm_failure, reversal) from its payment, a webhook's from
-- its delivery's endpoint. A follow-up (a reply a rail asked for after a callback) is the
-- rail's and stays NULL.
ALTER TABLE jobs ADD COLUMN client_id TEXT;
UPDATE jobs SET client_id = COALESCE(
    (SELECT p.client_id FROM payments p WHERE p.id = jobs.payment_id),
    (SELECT e.client_id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
     WHERE d.job_id = jobs.id));

-- Webhook deliveries and their tries: the endpoint's client.
ALTER TABLE webhook_deliveries ADD COLUMN client_id TEXT;
UPDATE webhook_deliveries SET client_id =
    (SELECT e.client_id FROM webhook_endpoints e WHERE e.id = webhook_deliveries.endpoint_id);

ALTER TABLE webhook_tries ADD COLUMN client_id TEXT;
UPDATE webhook_tries SET client_id =
    (SELECT d.client_id FROM webhook_deliveries d WHERE d.id = webhook_tries.delivery_id);

-- Statement lines: their statement's client.
ALTER TABLE statement_lines ADD COLUMN client_id TEXT;
UPDATE statement_lines SET client_id =
    (SELECT s.client_id FROM statements s WHERE s.id = statement_lines.statement_id);

-- Ledger entries: their transfer's book (NULL is the gateway's own book: money no client can
-- be named for yet, held in suspense).
ALTER TABLE ledger_entries ADD COLUMN client_id TEXT;
UPDATE ledger_entries SET client_id =
    (SELECT t.client_id FROM ledger_transfers t WHERE t.id = ledger_entries.transfer_id);

-- Rows that name a payment when they have one.
ALTER TABLE callback_events ADD COLUMN client_id TEXT;
UPDATE callback_events SET client_id =
    (SELECT p.client_id FROM payments p WHERE p.id = callback_events.payment_id);

ALTER TABLE rail_entries ADD COLUMN client_id TEXT;
UPDATE rail_entries SET client_id =
    (SELECT p.client_id FROM payments p WHERE p.id = rail_entries.payment_id);

-- A rail batch: the client of its lines (a batch is sent for one client's payments).
ALTER TABLE rail_batches ADD COLUMN client_id TEXT;
UPDATE rail_batches SET client_id = (SELECT a.client_id FROM attempts a
    WHERE a.batch_id = rail_batches.id ORDER BY a.id LIMIT 1);
