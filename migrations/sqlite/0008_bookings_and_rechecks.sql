-- The latest interim status a rail reported for an attempt that is not final yet (a bank's
-- pain.002 ACCP, ACSP, ACSC...), with its reason code and when it was read: what the attempt
-- waits on. Only a booked statement entry completes a bank payment.
ALTER TABLE attempts ADD COLUMN rail_status TEXT;
ALTER TABLE attempts ADD COLUMN rail_status_reason TEXT;
ALTER TABLE attempts ADD COLUMN rail_status_at BIGINT;

-- Statement entries (bookings, returns) a rail's file watcher applied, once each: a statement
-- read again, or the same entry in a camt.054 and later in the day's camt.053, changes nothing.
CREATE TABLE rail_entries (
    rail        TEXT NOT NULL,
    entry_key   TEXT NOT NULL,
    payment_id  TEXT,
    effect      TEXT NOT NULL,
    source      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (rail, entry_key)
);
CREATE INDEX rail_entries_payment ON rail_entries (payment_id);

-- Rails whose failure answers are not authoritative: a failed payment there is asked about once
-- more after `delay_micros` (a `confirm_failure` job written with the failure). Written from the
-- configuration when the gateway starts.
CREATE TABLE failure_rechecks (
    rail          TEXT PRIMARY KEY,
    delay_micros  BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
