-- Sign-ins to the finance officers' page (/reports). The browser's cookie holds a random
-- session id; only its SHA-256 is stored, with the API key it was made from (revoking the key
-- ends its sessions) and when it expires. Signing out deletes the row, so a copied cookie
-- stops working at once.
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL REFERENCES api_keys(id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
