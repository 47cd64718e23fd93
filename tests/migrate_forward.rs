//! A database made by an earlier release migrates forward with its data: the schema as of
//! migration 0012 is filled with two clients' payments and everything that hangs off them
//! (history, attempts, a rail batch, jobs, a conflict, a webhook delivery and its try, ledger
//! transfers and entries, a statement line, a settlement, callback events, a rail entry), then
//! every migration of this build runs, and each row names the client it belongs to.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use railgate::store::{Db, Kind};
use sqlx::migrate::Migrator;
use std::borrow::Cow;

/// The last migration of the schema the data is written in.
const PREVIOUS: i64 = 12;

/// The migrations of `kind` up to and including `PREVIOUS`, read from the repository.
async fn previous_migrator(kind: Kind) -> Migrator {
    let dir = match kind {
        Kind::Sqlite => concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"),
        Kind::Postgres => concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"),
    };
    let mut m = Migrator::new(std::path::Path::new(dir)).await.unwrap();
    let older: Vec<_> = m
        .migrations
        .iter()
        .filter(|m| m.version <= PREVIOUS)
        .cloned()
        .collect();
    assert!(
        older.iter().any(|m| m.version == PREVIOUS),
        "migration {PREVIOUS} is in the repository"
    );
    m.migrations = Cow::Owned(older);
    m
}

/// Runs one statement with text (or NULL) binds.
async fn exec(db: &Db, sql: &str, binds: &[Option<&str>]) {
    let mut q = railgate::store::sql::query(sql);
    for b in binds {
        q = q.bind(b.map(str::to_owned));
    }
    q.execute(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(db: &Db, sql: &str) -> i64 {
    railgate::store::sql::query_scalar(sql)
        .fetch_one(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn client_of(db: &Db, sql: &str, key: &str) -> Option<String> {
    railgate::store::sql::query_scalar(sql)
        .bind(key.to_owned())
        .fetch_one(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

const C1: &str = "00000000-0000-7000-8000-0000000000c1";
const C2: &str = "00000000-0000-7000-8000-0000000000c2";
const P1: &str = "00000000-0000-7000-8000-0000000000a1";
const P2: &str = "00000000-0000-7000-8000-0000000000a2";
const BATCH: &str = "00000000-0000-7000-8000-0000000000b1";
const WEBHOOK_JOB: &str = "00000000-0000-7000-8000-00000000f001";
const FOLLOW_UP_JOB: &str = "00000000-0000-7000-8000-00000000f002";
const DELIVERY: &str = "00000000-0000-7000-8000-00000000d001";
const STATEMENT: &str = "00000000-0000-7000-8000-0000000005a1";
const PAID: &str = "00000000-0000-7000-8000-00000000e001";
const UNMATCHED: &str = "00000000-0000-7000-8000-00000000e002";

/// Two clients' payments and what hangs off them, written as the previous release wrote them.
async fn fill(db: &Db) {
    for (c, name) in [(C1, "acme"), (C2, "other")] {
        exec(
            db,
            "INSERT INTO clients (id, name, created_at) VALUES ($1, $2, 1)",
            &[Some(c), Some(name)],
        )
        .await;
    }
    for (p, c, n) in [(P1, C1, "1"), (P2, C2, "2")] {
        exec(
            db,
            "INSERT INTO payments (id, client_id, direction, state, reference, amount_minor, \
             currency, party_type, party_value, metadata, rail, created_at, updated_at) \
             VALUES ($1, $2, 'disbursement', 'pending', $3, 1000, 'TZS', 'MSISDN', \
             '255712345600', '{}', 'mock', 1, 1)",
            &[Some(p), Some(c), Some(&format!("REF-{n}"))],
        )
        .await;
        for (seq, from, to) in [("1", None, "received"), ("2", Some("received"), "queued")] {
            exec(
                db,
                &format!(
                    "INSERT INTO payment_transitions (payment_id, seq, from_state, to_state, \
                     cause, at) VALUES ($1, {seq}, $2, $3, 'api', 1)"
                ),
                &[Some(p), from, Some(to)],
            )
            .await;
        }
        exec(
            db,
            "INSERT INTO attempts (id, payment_id, rail, seq, status, deadline_at, created_at, \
             updated_at, batch_id) VALUES ($1, $2, 'mock', 1, 'accepted', 9, 1, 1, $3)",
            &[
                Some(&format!("00000000-0000-7000-8000-00000000a00{n}")),
                Some(p),
                (p == P1).then_some(BATCH),
            ],
        )
        .await;
        exec(
            db,
            "INSERT INTO jobs (id, kind, payment_id, run_at, created_at) \
             VALUES ($1, 'payment', $2, 1, 1)",
            &[
                Some(&format!("00000000-0000-7000-8000-00000000f10{n}")),
                Some(p),
            ],
        )
        .await;
    }
    exec(
        db,
        "INSERT INTO rail_batches (id, rail, status, lines, created_at, updated_at) \
         VALUES ($1, 'mock', 'open', 1, 1, 1)",
        &[Some(BATCH)],
    )
    .await;
    exec(
        db,
        "INSERT INTO jobs (id, kind, payment_id, payload, run_at, created_at) \
         VALUES ($1, 'confirm_failure', $2, '{}', 1, 1)",
        &[Some("00000000-0000-7000-8000-00000000f003"), Some(P2)],
    )
    .await;
    exec(
        db,
        "INSERT INTO conflicts (id, payment_id, held_state, claimed, source, at) \
         VALUES ('00000000-0000-7000-8000-00000000cf01', $1, 'failed', 'completed', 'rail', 1)",
        &[Some(P2)],
    )
    .await;

    // A webhook for client 1: endpoint, event, delivery with its job, one try. And a rail's
    // follow-up job, which is no client's.
    exec(
        db,
        "INSERT INTO webhook_endpoints (id, client_id, url, secret, created_at) \
         VALUES ('00000000-0000-7000-8000-00000000ee01', $1, 'https://core.example/hook', 's', 1)",
        &[Some(C1)],
    )
    .await;
    exec(
        db,
        "INSERT INTO events (id, client_id, type, payment_id, data, created_at) \
         VALUES ('00000000-0000-7000-8000-00000000e0e1', $1, 'payment.pending', $2, '{}', 1)",
        &[Some(C1), Some(P1)],
    )
    .await;
    for (id, kind, payload) in [
        (WEBHOOK_JOB, "webhook", DELIVERY),
        (FOLLOW_UP_JOB, "follow_up", "{}"),
    ] {
        exec(
            db,
            "INSERT INTO jobs (id, kind, payload, run_at, created_at) VALUES ($1, $2, $3, 1, 1)",
            &[Some(id), Some(kind), Some(payload)],
        )
        .await;
    }
    exec(
        db,
        "INSERT INTO webhook_deliveries (id, event_seq, endpoint_id, event_id, order_key, job_id, \
         status, next_at, created_at) VALUES ($1, 1, '00000000-0000-7000-8000-00000000ee01', \
         '00000000-0000-7000-8000-00000000e0e1', $2, $3, 'pending', 1, 1)",
        &[Some(DELIVERY), Some(P1), Some(WEBHOOK_JOB)],
    )
    .await;
    exec(
        db,
        "INSERT INTO webhook_tries (delivery_id, n, at, status_code, duration_ms) \
         VALUES ($1, 1, 1, 500, 3)",
        &[Some(DELIVERY)],
    )
    .await;

    // The ledger: client 1's pending transfer for its payment, and money in the gateway's own
    // book (suspense, no client).
    for (id, code, client) in [
        (
            "00000000-0000-7000-8000-0000000acc01",
            "client:c1:benefits_payable:general",
            Some(C1),
        ),
        (
            "00000000-0000-7000-8000-0000000acc02",
            "client:c1:rail:mock:clearing",
            Some(C1),
        ),
        (
            "00000000-0000-7000-8000-0000000acc03",
            "rail:mock:clearing",
            None,
        ),
        ("00000000-0000-7000-8000-0000000acc04", "suspense", None),
    ] {
        exec(
            db,
            "INSERT INTO ledger_accounts (id, code, currency, client_id, kind, normal_side, \
             non_negative, created_at) VALUES ($1, $2, 'TZS', $3, 'suspense', 'credit', 0, 1)",
            &[Some(id), Some(code), client],
        )
        .await;
    }
    for (id, payment, ext, client, debit, credit) in [
        (PAID, Some(P1), None, Some(C1), "acc01", "acc02"),
        (
            UNMATCHED,
            None,
            Some("callback:mock:x"),
            None,
            "acc03",
            "acc04",
        ),
    ] {
        exec(
            db,
            &format!(
                "INSERT INTO ledger_transfers (id, payment_id, ext_key, phase, client_id, \
                 debit_account, credit_account, amount_minor, currency, cause, created_at) \
                 VALUES ($1, $2, $3, 'pending', $4, '00000000-0000-7000-8000-0000000{debit}', \
                 '00000000-0000-7000-8000-0000000{credit}', 1000, 'TZS', 'test', 1)"
            ),
            &[Some(id), payment, ext, client],
        )
        .await;
        for account in [debit, credit] {
            exec(
                db,
                &format!(
                    "INSERT INTO ledger_entries (transfer_id, account_id, debits_pending, \
                     debits_posted, credits_pending, credits_posted, at) \
                     VALUES ($1, '00000000-0000-7000-8000-0000000{account}', 1000, 0, 0, 0, 1)"
                ),
                &[Some(id)],
            )
            .await;
        }
    }

    // Reconciliation: client 1's statement, one line, the settlement it proved.
    exec(
        db,
        "INSERT INTO statements (id, client_id, content_hash, format, byte_size, status, \
         uploaded_by, created_at) VALUES ($1, $2, 'h', 'csv', 10, 'loaded', 'key', 1)",
        &[Some(STATEMENT), Some(C1)],
    )
    .await;
    exec(
        db,
        "INSERT INTO statement_lines (statement_id, line_no, section, entry, source_line, \
         byte_offset, status, amount_minor, currency, direction) \
         VALUES ($1, 1, 0, 0, 2, 0, 'booked', 1000, 'TZS', 'debit')",
        &[Some(STATEMENT)],
    )
    .await;
    exec(
        db,
        "INSERT INTO recon_settlements (payment_id, run_id, statement_id, line_no, rule, \
         amount_minor, fee_minor, currency, at) \
         VALUES ($1, 'run', $2, 1, 'reference', 1000, 0, 'TZS', 1)",
        &[Some(P1), Some(STATEMENT)],
    )
    .await;

    // The rail's inbox: a callback, its event for client 2's payment and one that matched
    // nothing; a bank entry applied to client 1's payment and one for no payment.
    railgate::store::sql::query(
        "INSERT INTO callbacks (id, rail, method, path, headers, body, received_at, verdict) \
         VALUES ('00000000-0000-7000-8000-0000000cb001', 'mock', 'POST', '/cb', '{}', $1, 1, \
         'applied')",
    )
    .bind(b"{}".to_vec())
    .execute(db.pool())
    .await
    .unwrap();
    for (id, payment) in [("cb-1", Some(P2)), ("cb-2", None)] {
        exec(
            db,
            "INSERT INTO callback_events (rail, callback_id, callback_row, payment_id, effect, at) \
             VALUES ('mock', $1, '00000000-0000-7000-8000-0000000cb001', $2, 'applied', 1)",
            &[Some(id), payment],
        )
        .await;
        exec(
            db,
            "INSERT INTO rail_entries (rail, entry_key, payment_id, effect, source, at) \
             VALUES ('bank', $1, $2, 'applied', 'camt.053', 1)",
            &[Some(id), payment.map(|_| P1)],
        )
        .await;
    }
}

both_stores!(
    rows_of_the_previous_schema_name_their_client,
    |store| async move {
        let Some(url) = database_url(store).await else {
            return;
        };
        let db = Db::connect(&url, 2).await.unwrap();
        db.pool()
            .migrate(&previous_migrator(db.kind()).await)
            .await
            .unwrap();
        fill(&db).await;
        let before: i64 = count(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await;

        db.migrate().await.unwrap();
        assert!(db.migrations_applied().await.unwrap());
        assert!(count(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await > before);

        // Rows of a payment: its client, every one.
        for table in [
            "payment_transitions",
            "attempts",
            "conflicts",
            "recon_settlements",
        ] {
            let rows = count(&db, &format!("SELECT COUNT(*) FROM {table}")).await;
            assert!(rows > 0, "{table} has rows");
            let right = count(
                &db,
                &format!(
                    "SELECT COUNT(*) FROM {table} t JOIN payments p ON p.id = t.payment_id \
                     WHERE t.client_id = p.client_id"
                ),
            )
            .await;
            assert_eq!(right, rows, "{table}: every row has its payment's client");
        }
        for table in ["jobs", "callback_events", "rail_entries"] {
            let with_payment = count(
                &db,
                &format!("SELECT COUNT(*) FROM {table} WHERE payment_id IS NOT NULL"),
            )
            .await;
            assert!(with_payment > 0, "{table} has rows of a payment");
            let right = count(
                &db,
                &format!(
                    "SELECT COUNT(*) FROM {table} t JOIN payments p ON p.id = t.payment_id \
                     WHERE t.client_id = p.client_id"
                ),
            )
            .await;
            assert_eq!(
                right, with_payment,
                "{table}: rows of a payment have its client"
            );
        }
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM attempts WHERE client_id = '00000000-0000-7000-8000-0000000000c2'"
            )
            .await,
            1,
            "each payment's rows have their own client, not the first one's"
        );

        // Rows of no payment: where they belong, or nobody's.
        let q = "SELECT client_id FROM jobs WHERE id = $1";
        assert_eq!(client_of(&db, q, WEBHOOK_JOB).await.as_deref(), Some(C1));
        assert_eq!(client_of(&db, q, FOLLOW_UP_JOB).await, None);
        let q = "SELECT client_id FROM webhook_deliveries WHERE id = $1";
        assert_eq!(client_of(&db, q, DELIVERY).await.as_deref(), Some(C1));
        let q = "SELECT client_id FROM webhook_tries WHERE delivery_id = $1";
        assert_eq!(client_of(&db, q, DELIVERY).await.as_deref(), Some(C1));
        let q = "SELECT client_id FROM rail_batches WHERE id = $1";
        assert_eq!(client_of(&db, q, BATCH).await.as_deref(), Some(C1));
        let q = "SELECT client_id FROM statement_lines WHERE statement_id = $1";
        assert_eq!(client_of(&db, q, STATEMENT).await.as_deref(), Some(C1));
        let q = "SELECT MAX(client_id) FROM ledger_entries WHERE transfer_id = $1";
        assert_eq!(client_of(&db, q, PAID).await.as_deref(), Some(C1));
        assert_eq!(client_of(&db, q, UNMATCHED).await, None);
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM ledger_entries WHERE client_id IS NOT NULL"
            )
            .await,
            2,
            "the gateway's own book stays no client's"
        );
        let q = "SELECT client_id FROM callback_events WHERE callback_id = $1";
        assert_eq!(client_of(&db, q, "cb-1").await.as_deref(), Some(C2));
        assert_eq!(client_of(&db, q, "cb-2").await, None);
        let q = "SELECT client_id FROM rail_entries WHERE entry_key = $1";
        assert_eq!(client_of(&db, q, "cb-2").await, None);

        // PostgreSQL holds the gateway to it from now on where a row always has a client.
        if db.kind() == Kind::Postgres {
            let required = count(
                &db,
                "SELECT COUNT(*) FROM information_schema.columns WHERE column_name = 'client_id' \
                 AND is_nullable = 'NO' AND table_schema = current_schema() AND table_name IN \
                 ('payment_transitions', 'attempts', 'conflicts', 'recon_settlements', \
                 'webhook_deliveries', 'webhook_tries', 'statement_lines')",
            )
            .await;
            assert_eq!(required, 7);
        }
        db.close().await;
    }
);
