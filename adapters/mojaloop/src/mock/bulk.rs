//! The mock hub's bulk (`POST /bulkQuotes`, `POST /bulkTransfers`, `GET /bulkTransfers/{id}`),
//! playing the switch and the peer FSP as payee of every line. One answer per bulk; each line
//! answers by the last two digits of its payee's identifier (the lines' lookups are ordinary
//! `GET /parties`, so 02 fails there):
//!
//! | ends in | in the bulk |
//! |---|---|
//! | 00, others | COMMITTED: the line's `fulfilment` in `PUT /bulkTransfers/{id}` |
//! | 01 | `errorInformation` 4001 in the transfer results |
//! | 03 | `errorInformation` 5105 in the transfer results |
//! | 06, 11 | `errorInformation` 3303 in the transfer results (expired, as ABORTED) |
//! | 14 | quoted one minor unit above the amount asked (the payer must not send it) |
//! | 15 | `errorInformation` 5101 in the quote results (the payee refused to quote) |
//!
//! A bulk POSTed again with the same body gets its answer again; with another body under the
//! same id, `…/error` 3106. `Faults::drop_bulk_answers` withholds the next answers to
//! `POST /bulkTransfers` (the bulk is still recorded and paid): only `GET /bulkTransfers/{id}`
//! then tells; `Faults::cut_bulk_connections` drops the connection of the next ones before
//! their HTTP answer. Every committed line is a payout (`GET /_control/payouts`) and answers
//! `GET /transfers/{id}` like a single transfer.

use super::exchange::{commit, error_body, spawn_deliver, Request, Sign};
use super::*;

/// A bulk POST the mock recorded: its body's hash and the answer it gave.
#[derive(Debug, Clone)]
pub(super) struct Recorded {
    hash: String,
    answer: Vec<u8>,
}

/// The peer FSP's terms for one line of a bulk quote, by the line's transfer id.
#[derive(Debug, Clone)]
pub(super) struct LineTerms {
    condition: String,
    fulfilment: String,
    amount: FspiopMoney,
    reference: String,
    scenario: u8,
}

fn str_at(v: &Value, p: &str) -> String {
    v.pointer(p)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A POST again under a recorded id: the same body gets the same answer again, another body
/// `3106`. `None` when the id is new.
fn resend(
    s: &Arc<Shared>,
    recorded: Option<Recorded>,
    hash: &str,
    path: String,
    resource: &'static str,
) -> Option<Response> {
    let rec = recorded?;
    let (path, source, body) = if rec.hash == hash {
        (path, s.config.peer_fsp_id.clone(), rec.answer)
    } else {
        (
            format!("{path}/error"),
            s.config.hub_fsp_id.clone(),
            error_body("3106", "Modified request"),
        )
    };
    spawn_deliver(
        s,
        s.config.callback_delay,
        Method::PUT,
        path,
        resource,
        source,
        Some(body),
        Sign::Genuine,
    );
    Some(accepted())
}

pub(super) fn post_bulk_quotes(s: &Arc<Shared>, r: &Request<'_>) -> Response {
    let v = match s
        .check(r, "bulkQuotes", true, true)
        .and_then(|v| validate::bulk_quotes_post(&v).map(|()| v))
    {
        Ok(v) => v,
        Err(e) => return s.reject("bulkQuotes", e),
    };
    if str_at(&v, "/payer/partyIdInfo/fspId") != s.config.dfsp_id {
        return s.reject(
            "bulkQuotes",
            validate::invalid(
                "3100",
                "Generic validation error - the payer is not at the sender",
            ),
        );
    }
    let id = str_at(&v, "/bulkQuoteId");
    let hash = body_hash(&v);
    let path = format!("/bulkQuotes/{id}");
    let recorded = s.inner().bulk_quotes.get(&id).cloned();
    if let Some(answered) = resend(s, recorded, &hash, path.clone(), "bulkQuotes") {
        return answered;
    }
    let expiration = wire::after(Utc::now(), Duration::from_secs(60));
    let mut results = Vec::new();
    let mut terms = Vec::new();
    let quotes = v
        .get("individualQuotes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for q in &quotes {
        match quote_line(s, &v, q, expiration) {
            Ok((result, transfer_id, t)) => {
                results.push(result);
                terms.push((transfer_id, t));
            }
            Err(result) => results.push(result),
        }
    }
    let answer = serde_json::to_vec(&json!({
        "individualQuoteResults": results,
        "expiration": fspiop_datetime(expiration),
    }))
    .unwrap_or_default();
    {
        let mut inner = s.inner();
        for (transfer_id, t) in terms {
            inner.bulk_lines.insert(transfer_id, t);
        }
        inner.bulk_quotes.insert(
            id,
            Recorded {
                hash,
                answer: answer.clone(),
            },
        );
    }
    spawn_deliver(
        s,
        s.config.callback_delay,
        Method::PUT,
        path,
        "bulkQuotes",
        s.config.peer_fsp_id.clone(),
        Some(answer),
        Sign::Genuine,
    );
    accepted()
}

/// One line's quote result: the terms (and what the transfer will be checked against), or an
/// `errorInformation` result.
fn quote_line(
    s: &Arc<Shared>,
    bulk: &Value,
    q: &Value,
    expiration: chrono::DateTime<Utc>,
) -> Result<(Value, String, LineTerms), Value> {
    let quote_id = str_at(q, "/quoteId");
    let payee_id = str_at(q, "/payee/partyIdInfo/partyIdentifier");
    let scenario = digits(&payee_id);
    let refused = |code: &str, description: &str| json!({ "quoteId": quote_id, "errorInformation": { "errorCode": code, "errorDescription": description } });
    if scenario == 15 {
        return Err(refused("5101", "Payee rejected quote"));
    }
    let asked: Option<FspiopMoney> = q
        .get("amount")
        .and_then(|a| serde_json::from_value(a.clone()).ok());
    let Some(money) = asked.as_ref().and_then(money_of) else {
        return Err(refused("3100", "Generic validation error - amount"));
    };
    let quoted = if scenario == 14 {
        money
            .minor()
            .checked_add(1)
            .and_then(|m| Money::from_minor(m, money.currency()).ok())
            .unwrap_or(money)
    } else {
        money
    };
    let amount = FspiopMoney::from(quoted);
    let mut tx = serde_json::Map::new();
    for k in [
        "quoteId",
        "transactionId",
        "transactionType",
        "payee",
        "note",
    ] {
        if let Some(x) = q.get(k) {
            tx.insert(k.to_owned(), x.clone());
        }
    }
    if let Some(payer) = bulk.get("payer") {
        tx.insert("payer".to_owned(), payer.clone());
    }
    tx.insert("expiration".to_owned(), json!(fspiop_datetime(expiration)));
    tx.insert("amount".to_owned(), json!(amount));
    let peer = &s.config.peer_fsp_id;
    let address = ilp::v1_address(
        peer,
        &str_at(q, "/payee/partyIdInfo/partyIdType"),
        &payee_id,
        None,
    );
    let ilp = ilp::quote_ilp(
        s.config.ilp_version,
        &s.peer_key,
        &Value::Object(tx),
        u64::try_from(quoted.minor()).unwrap_or(0),
        expiration,
        &address,
    );
    let result = json!({
        "quoteId": quote_id,
        "transferAmount": amount,
        "payeeFspFee": { "amount": "0", "currency": amount.currency },
        "ilpPacket": ilp.packet,
        "condition": ilp.condition,
    });
    let terms = LineTerms {
        condition: ilp.condition,
        fulfilment: ilp.fulfilment,
        amount,
        reference: str_at(q, "/note"),
        scenario,
    };
    Ok((result, str_at(q, "/transactionId"), terms))
}

pub(super) async fn post_bulk_transfers(
    s: &Arc<Shared>,
    r: &Request<'_>,
    kill: Option<ConnKill>,
) -> Response {
    let v = match s
        .check(r, "bulkTransfers", true, true)
        .and_then(|v| validate::bulk_transfers_post(&v).map(|()| v))
    {
        Ok(v) => v,
        Err(e) => return s.reject("bulkTransfers", e),
    };
    let cfg = &s.config;
    let refuse_with =
        |why: &str| s.reject("bulkTransfers", validate::invalid("3100", why.to_owned()));
    if str_at(&v, "/payerFsp") != cfg.dfsp_id {
        return refuse_with("Generic validation error - FSPIOP-Source does not match payerFsp");
    }
    if str_at(&v, "/payeeFsp") != cfg.peer_fsp_id {
        return s.reject(
            "bulkTransfers",
            validate::invalid("3201", "Destination FSP error - unknown payee FSP"),
        );
    }
    if wire::parse_fspiop_datetime(&str_at(&v, "/expiration")).map_or(true, |e| e <= Utc::now()) {
        return refuse_with("Generic validation error - expiration date is in the past");
    }
    let id = str_at(&v, "/bulkTransferId");
    let hash = body_hash(&v);
    let path = format!("/bulkTransfers/{id}");
    let recorded = s.inner().bulk_transfers.get(&id).cloned();
    if let Some(answered) = resend(s, recorded, &hash, path.clone(), "bulkTransfers") {
        return answered;
    }
    let transfers = v
        .get("individualTransfers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (answer, withheld, cut) = {
        let mut inner = s.inner();
        let results: Vec<Value> = transfers
            .iter()
            .map(|t| transfer_line(&mut inner, t, &cfg.peer_fsp_id))
            .collect();
        let answer = serde_json::to_vec(&json!({
            "completedTimestamp": fspiop_datetime(Utc::now()),
            "individualTransferResults": results,
            "bulkTransferState": "COMPLETED",
        }))
        .unwrap_or_default();
        inner.bulk_transfers.insert(
            id,
            Recorded {
                hash,
                answer: answer.clone(),
            },
        );
        let withheld = inner.faults.drop_bulk_answers > 0;
        if withheld {
            inner.faults.drop_bulk_answers = inner.faults.drop_bulk_answers.saturating_sub(1);
        }
        let cut = inner.faults.cut_bulk_connections > 0;
        if cut {
            inner.faults.cut_bulk_connections = inner.faults.cut_bulk_connections.saturating_sub(1);
        }
        (answer, withheld, cut)
    };
    if !withheld {
        spawn_deliver(
            s,
            cfg.callback_delay,
            Method::PUT,
            path,
            "bulkTransfers",
            cfg.peer_fsp_id.clone(),
            Some(answer),
            Sign::Genuine,
        );
    }
    if let (true, Some(k)) = (cut, kill) {
        // Recorded and paid; the connection drops before the answer.
        k.0.notify_one();
        std::future::pending::<()>().await;
    }
    accepted()
}

/// One line of a bulk transfer, against its quote's terms: committed (paid once) or refused.
fn transfer_line(inner: &mut Inner, t: &Value, peer: &str) -> Value {
    let transfer_id = str_at(t, "/transferId");
    let failed = |code: &str, description: &str| json!({ "transferId": transfer_id, "errorInformation": { "errorCode": code, "errorDescription": description } });
    let Some(terms) = inner.bulk_lines.get(&transfer_id).cloned() else {
        return failed(
            "3100",
            "Generic validation error - no quote for this transfer",
        );
    };
    let amount: Option<FspiopMoney> = t
        .get("transferAmount")
        .and_then(|a| serde_json::from_value(a.clone()).ok());
    if str_at(t, "/condition") != terms.condition {
        return failed("3100", "Generic validation error - invalid condition");
    }
    if amount.as_ref().and_then(money_of) != money_of(&terms.amount) {
        return failed(
            "3100",
            "Generic validation error - amount differs from the quote",
        );
    }
    let state = match terms.scenario {
        1 => Some(("4001", "Payer FSP insufficient liquidity")),
        3 => Some(("5105", "Payee FSP rejected transaction")),
        6 | 11 => Some(("3303", "Transfer expired")),
        _ => None,
    };
    if !inner.transfers.contains_key(&transfer_id) {
        inner.transfers.insert(
            transfer_id.clone(),
            TransferRec {
                hash: String::new(),
                scenario: terms.scenario,
                state: match state {
                    Some((code, description)) => TransferState::Failed {
                        code: code.to_owned(),
                        description: description.to_owned(),
                    },
                    None => TransferState::Pending,
                },
                fulfilment: terms.fulfilment.clone(),
                amount: terms.amount.clone(),
                reference: terms.reference.clone(),
            },
        );
    }
    match state {
        Some((code, description)) => failed(code, description),
        None => {
            commit(inner, &transfer_id, peer);
            json!({ "transferId": transfer_id, "fulfilment": terms.fulfilment })
        }
    }
}

pub(super) fn get_bulk_transfer(s: &Arc<Shared>, r: &Request<'_>, id: &str) -> Response {
    if let Err(e) = s.check(r, "bulkTransfers", true, false) {
        return s.reject("bulkTransfers", e);
    }
    let recorded = s.inner().bulk_transfers.get(id).cloned();
    let path = format!("/bulkTransfers/{id}");
    let (path, source, body) = match recorded {
        Some(rec) => (path, s.config.peer_fsp_id.clone(), rec.answer),
        None => (
            format!("{path}/error"),
            s.config.hub_fsp_id.clone(),
            error_body("3210", "Bulk transfer ID not found"),
        ),
    };
    spawn_deliver(
        s,
        s.config.callback_delay,
        Method::PUT,
        path,
        "bulkTransfers",
        source,
        Some(body),
        Sign::Genuine,
    );
    accepted()
}
