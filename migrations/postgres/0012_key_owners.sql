-- Who holds an in-flight idempotency key: the running gateway that took it (its instance id,
-- new at each start). A key whose owner is known dead is retryable at once: on SQLite (one
-- instance per file) any owner but the running one; on PostgreSQL an owner whose heartbeat in
-- `instances` is stale or gone. Keys taken before this migration have no owner and keep the
-- old rule (abandoned after a minute).

ALTER TABLE idempotency_keys ADD COLUMN owner TEXT;

-- Running gateways sharing the database, each refreshing `seen_at` while it runs.
CREATE TABLE instances (
    id          TEXT PRIMARY KEY,
    started_at  BIGINT NOT NULL,
    seen_at     BIGINT NOT NULL
);
