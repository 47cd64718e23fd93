//! `/v1/ledger/...`: a client's accounts, their entries and its trial balance. Readable with
//! `reports:read` (finance officers) or `payments:read` (the core reconciling its payments).

use super::auth::Caller;
use super::paging;
use super::problem::Problem;
use super::AppState;
use crate::domain::Currency;
use crate::ledger::balances::{self, Account, Balance};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

const READ: &[&str] = &["reports:read", "payments:read"];

/// Minor units as a decimal string in the currency's exponent ("0.00", "-1500.50").
fn amount(minor: i64, currency: &str) -> String {
    let exponent = currency.parse::<Currency>().map_or(0, |c| c.exponent());
    Decimal::new(minor, exponent).to_string()
}

fn balance_view(b: &Balance, currency: &str) -> Value {
    json!({
        "debits_pending": amount(b.debits_pending, currency),
        "debits_posted": amount(b.debits_posted, currency),
        "credits_pending": amount(b.credits_pending, currency),
        "credits_posted": amount(b.credits_posted, currency),
    })
}

fn account_view(a: &Account) -> Value {
    json!({
        "id": a.id,
        "code": a.code,
        "kind": a.kind,
        "currency": a.currency,
        "normal_side": a.normal_side.as_str(),
        "non_negative": a.non_negative,
        "totals": balance_view(&a.balance, &a.currency),
        "balance": {
            "posted": amount(a.balance.posted(a.normal_side), &a.currency),
            "pending": amount(a.balance.pending(a.normal_side), &a.currency),
        },
        "created_at": a.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    })
}

pub async fn accounts(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    caller.require_any(READ)?;
    let list = balances::accounts(&state.db, Some(caller.client_id)).await?;
    Ok(Json(
        json!({ "data": list.iter().map(account_view).collect::<Vec<_>>() }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntriesQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn entries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    caller.require_any(READ)?;
    let q = paging::query(query)?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::not_found("account"))?;
    let account = balances::account_of(&state.db, Some(caller.client_id), id)
        .await?
        .ok_or_else(|| Problem::not_found("account"))?;
    let mut errors = Vec::new();
    let limit = paging::limit(q.limit.as_deref(), &mut errors);
    let after = match q.cursor.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n,
        Some(_) => {
            errors.push(Problem::field("cursor", "is not a cursor this API issued"));
            0
        }
    };
    if !errors.is_empty() {
        return Err(paging::bad_query(errors));
    }
    let page = balances::entries(&state.db, account.id, after, limit).await?;
    let next = (i64::try_from(page.len()).unwrap_or(0) == limit)
        .then(|| page.last().map(|e| e.seq.to_string()))
        .flatten();
    let data: Vec<Value> = page
        .iter()
        .map(|e| {
            json!({
                "transfer_id": e.transfer_id,
                "phase": e.phase,
                "side": if e.debit_account == account.id { "debit" } else { "credit" },
                "amount": {"value": amount(e.amount_minor, &e.currency), "currency": e.currency},
                "payment_id": e.payment_id,
                "pending_id": e.pending_id,
                "reverses_id": e.reverses_id,
                "debit_account": e.debit_account,
                "credit_account": e.credit_account,
                "effect": balance_view(&e.deltas, &e.currency),
                "cause": e.cause,
                "at": e.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            })
        })
        .collect();
    Ok(Json(json!({
        "account": account_view(&account),
        "data": data,
        "next_cursor": next,
    })))
}

pub async fn trial_balance(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    caller.require_any(READ)?;
    let totals = balances::trial_balance(&state.db, Some(caller.client_id)).await?;
    let accounts = balances::accounts(&state.db, Some(caller.client_id)).await?;
    let balanced = totals.iter().all(|t| t.balanced());
    Ok(Json(json!({
        "balanced": balanced,
        "currencies": totals.iter().map(|t| {
            let mut v = balance_view(&t.totals, &t.currency);
            if let Some(o) = v.as_object_mut() {
                o.insert("currency".into(), json!(t.currency));
                o.insert("balanced".into(), json!(t.balanced()));
            }
            v
        }).collect::<Vec<_>>(),
        "accounts": accounts.iter().map(account_view).collect::<Vec<_>>(),
    })))
}
