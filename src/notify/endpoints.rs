//! A client's webhook endpoints. The signing secret is kept in clear because every delivery
//! must be signed with it; the API shows it once, at creation.
//!
//! An endpoint has a format: `standard` (the event as JSON, Standard Webhooks signature) or
//! `openimis` (payroll results in the body openIMIS's `send_callback_to_openimis` takes, with
//! the client's openIMIS token as a bearer token; see `notify::openimis`).

use super::events::EventType;
use super::signature;
use crate::store::Conn;
use crate::store::{col, from_micros, now_micros, uuid_col, Db, Result};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What a delivery to the endpoint looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Standard,
    OpenImis,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Standard => "standard",
            Format::OpenImis => "openimis",
        }
    }
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "standard" => Some(Format::Standard),
            "openimis" => Some(Format::OpenImis),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub client_id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// `None`: every event.
    pub event_types: Option<Vec<String>>,
    pub format: Format,
    pub created_at: DateTime<Utc>,
}

fn from_row(row: &crate::store::Row) -> Result<Endpoint> {
    let types: Option<String> = col(row, "event_types")?;
    let format: String = col(row, "format")?;
    Ok(Endpoint {
        format: Format::parse(&format).ok_or_else(|| {
            crate::store::StoreError::Corrupt(format!("endpoint format {format}"))
        })?,
        id: uuid_col(row, "id")?,
        client_id: uuid_col(row, "client_id")?,
        url: col(row, "url")?,
        description: col(row, "description")?,
        event_types: types.map(|t| t.split_whitespace().map(str::to_owned).collect()),
        created_at: from_micros(col(row, "created_at")?),
    })
}

/// Stores an endpoint; returns it with its new secret. `auth_token` is sent as a bearer token
/// on each delivery (the openIMIS format).
pub async fn create(
    conn: &mut Conn,
    client_id: Uuid,
    url: &str,
    description: Option<&str>,
    event_types: Option<&[EventType]>,
    format: Format,
    auth_token: Option<&str>,
) -> Result<(Endpoint, String)> {
    let id = Uuid::now_v7();
    let secret = signature::new_secret();
    let now = now_micros();
    let types = event_types.map(|ts| ts.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" "));
    crate::store::sql::query(
        "INSERT INTO webhook_endpoints (id, client_id, url, description, event_types, secret, \
         created_at, format, auth_token) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id.to_string())
    .bind(client_id.to_string())
    .bind(url)
    .bind(description)
    .bind(types.as_deref())
    .bind(&secret)
    .bind(now)
    .bind(format.as_str())
    .bind(auth_token)
    .execute(conn)
    .await?;
    Ok((
        Endpoint {
            id,
            client_id,
            url: url.to_owned(),
            description: description.map(str::to_owned),
            event_types: types.map(|t| t.split_whitespace().map(str::to_owned).collect()),
            format,
            created_at: from_micros(now),
        },
        secret,
    ))
}

const COLUMNS: &str = "id, client_id, url, description, event_types, format, created_at";

pub async fn list(db: &Db, client_id: Uuid) -> Result<Vec<Endpoint>> {
    let rows = crate::store::sql::query(&format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE client_id = $1 AND deleted_at IS NULL \
         ORDER BY id"
    ))
    .bind(client_id.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// The client's endpoint, deleted or not (its delivery history stays readable).
pub async fn get(db: &Db, client_id: Uuid, id: Uuid) -> Result<Option<Endpoint>> {
    let row = crate::store::sql::query(&format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1 AND client_id = $2"
    ))
    .bind(id.to_string())
    .bind(client_id.to_string())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Stops deliveries to the endpoint (those waiting are abandoned); false if there was none.
pub async fn delete(db: &Db, client_id: Uuid, id: Uuid) -> Result<bool> {
    let done = crate::store::sql::query(
        "UPDATE webhook_endpoints SET deleted_at = $1 WHERE id = $2 AND client_id = $3 \
         AND deleted_at IS NULL",
    )
    .bind(now_micros())
    .bind(id.to_string())
    .bind(client_id.to_string())
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}
