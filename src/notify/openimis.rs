//! openIMIS as a delivery target (DESIGN §3, §7): when a payroll completes, its results are
//! posted to openIMIS's `POST {base}/api/payroll/send_callback_to_openimis/` as that view reads
//! them — `payroll_id` (openIMIS's own id of the payroll), `response_from_gateway` (an object:
//! the `payroll.completed` event's data) and `rejected_bills` (a list: the codes of the items
//! that were not paid) — with the client's openIMIS token as `Authorization: Bearer <token>`
//! (openIMIS's REST views take a JWT bearer token; the user needs the payroll right 202002).
//!
//! It is a webhook endpoint of format `openimis` that wants `payroll.completed` only, so it is
//! written with the event, sent by the same durable job, retried with the same backoff, and
//! its tries are listed at `GET /v1/webhooks/{id}/deliveries`.

use super::events::{EventType, StoredEvent};
use crate::store::{Db, Result};
use serde_json::{json, Value};

/// The path of openIMIS's callback view below its base URL.
pub const CALLBACK_PATH: &str = "api/payroll/send_callback_to_openimis/";

/// The URL deliveries go to, from the openIMIS base URL a client configured.
pub fn callback_url(base: &str) -> String {
    format!("{}/{CALLBACK_PATH}", base.trim_end_matches('/'))
}

/// Records openIMIS's id of a payroll (`POST /v1/payrolls?openimis_payroll_id=`).
pub async fn link_payroll(
    conn: &mut crate::store::Conn,
    payroll_id: uuid::Uuid,
    openimis_id: &str,
) -> Result<()> {
    crate::store::sql::query("UPDATE payrolls SET openimis_payroll_id = $1 WHERE id = $2")
        .bind(openimis_id)
        .bind(payroll_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Item states that mean "not paid": their codes are the rejected bills.
const REJECTED_STATES: &str = "('failed', 'cancelled', 'reversed')";

/// The body for openIMIS, or why this event cannot go there (the delivery is then abandoned
/// with that reason in its history: openIMIS could never accept it).
pub async fn callback_body(
    db: &Db,
    event: &StoredEvent,
) -> Result<std::result::Result<String, String>> {
    let (true, Some(payroll)) = (
        event.kind == EventType::PayrollCompleted.as_str(),
        event.payroll_id,
    ) else {
        return Ok(Err(format!(
            "only payroll.completed goes to openIMIS, not {}",
            event.kind
        )));
    };
    let openimis_id: Option<String> =
        crate::store::sql::query_scalar("SELECT openimis_payroll_id FROM payrolls WHERE id = $1")
            .bind(payroll.to_string())
            .fetch_optional(db.pool())
            .await?
            .flatten();
    let Some(openimis_id) = openimis_id else {
        return Ok(Err(
            "the payroll names no openIMIS payroll (submit it with ?openimis_payroll_id=)".into(),
        ));
    };
    let rejected: Vec<String> = crate::store::sql::query_scalar(&format!(
        "SELECT reference FROM payments WHERE payroll_id = $1 AND state IN {REJECTED_STATES} \
         ORDER BY reference"
    ))
    .bind(payroll.to_string())
    .fetch_all(db.pool())
    .await?;
    let mut response = match &event.data {
        Value::Object(o) => o.clone(),
        _ => serde_json::Map::new(),
    };
    response.insert("gateway".into(), json!("railgate"));
    response.insert("event_id".into(), json!(event.id));
    Ok(Ok(json!({
        "payroll_id": openimis_id,
        "response_from_gateway": response,
        "rejected_bills": rejected,
    })
    .to_string()))
}
