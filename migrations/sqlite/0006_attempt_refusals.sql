-- How many times the rail refused an attempt with nothing moved (a 5xx, a connection refused
-- before the request was read). The dispatcher gives up after `max_submit_tries` refusals of
-- the same attempt; it used to count the job's claims instead, which a gateway restart also
-- increments, so a rail briefly down while the gateway restarted could fail payments early.
ALTER TABLE attempts ADD COLUMN refusals BIGINT NOT NULL DEFAULT 0;
