-- Inbound requests a rail requires to be idempotent under its own id (Mojaloop's POST /quotes and
-- POST /transfers, API definition 3.2.5): the first body's hash and the answers sent for it, so a
-- resend gets them again and a modified request is refused.
CREATE TABLE inbound_posts (
    rail          TEXT NOT NULL,
    post_key      TEXT NOT NULL,
    body_hash     TEXT NOT NULL,
    callback_row  TEXT NOT NULL,
    follow_ups    TEXT NOT NULL,
    at            BIGINT NOT NULL,
    PRIMARY KEY (rail, post_key)
);
