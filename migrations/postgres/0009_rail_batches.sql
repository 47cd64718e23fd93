-- Batches sent to a rail's batch API (payrolls): our id for the upload, stored before sending,
-- the rail's reference once it answered, and where the batch stands. Each line is an attempt
-- whose batch_id names its batch, so a batch's open lines are found through an index.
CREATE TABLE rail_batches (
    id          TEXT PRIMARY KEY,
    rail        TEXT NOT NULL,
    batch_ref   TEXT,
    -- sending | open | unknown | refused | closed
    status      TEXT NOT NULL,
    lines       BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX rail_batches_status ON rail_batches (rail, status);

ALTER TABLE attempts ADD COLUMN batch_id TEXT;
CREATE INDEX attempts_batch ON attempts (batch_id);
