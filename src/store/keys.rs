//! Clients and their API keys. Keys are stored as SHA-256 hashes; the clear key is shown once.

use super::{col, now_micros, uuid_col, Db, Result};
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: Uuid,
    pub client_id: Uuid,
    pub client_name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub label: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key: `rg_` and 40 characters of base62 (about 238 bits).
pub fn generate_key() -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    let body: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    format!("rg_{body}")
}

pub async fn find_client(db: &Db, name: &str) -> Result<Option<Uuid>> {
    let row = crate::store::sql::query("SELECT id FROM clients WHERE name = $1")
        .bind(name)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| uuid_col(&r, "id")).transpose()
}

pub async fn ensure_client(db: &Db, name: &str) -> Result<Uuid> {
    if let Some(id) = find_client(db, name).await? {
        return Ok(id);
    }
    let id = Uuid::now_v7();
    crate::store::sql::query("INSERT INTO clients (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(id.to_string())
        .bind(name)
        .bind(now_micros())
        .execute(db.pool())
        .await?;
    Ok(id)
}

/// Stores a key (given in clear, hashed here) for a client with the scopes.
pub async fn insert_key(
    db: &Db,
    client_id: Uuid,
    key: &str,
    scopes: &[&str],
    label: Option<&str>,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let prefix: String = key.chars().take(10).collect();
    crate::store::sql::query(
        "INSERT INTO api_keys (id, client_id, prefix, key_hash, scopes, label, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.to_string())
    .bind(client_id.to_string())
    .bind(prefix)
    .bind(hash_key(key))
    .bind(scopes.join(" "))
    .bind(label)
    .bind(now_micros())
    .execute(db.pool())
    .await?;
    Ok(id)
}

pub(crate) fn record(row: &crate::store::Row) -> Result<KeyRecord> {
    let scopes: String = col(row, "scopes")?;
    Ok(KeyRecord {
        id: uuid_col(row, "id")?,
        client_id: uuid_col(row, "client_id")?,
        client_name: col(row, "client_name")?,
        prefix: col(row, "prefix")?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        label: col(row, "label")?,
        created_at: col(row, "created_at")?,
        revoked_at: col(row, "revoked_at")?,
    })
}

pub(crate) const SELECT: &str =
    "SELECT k.id, k.client_id, c.name AS client_name, k.prefix, k.scopes, k.label, \
     k.created_at, k.revoked_at FROM api_keys k JOIN clients c ON c.id = k.client_id";

/// The key record for a presented key, revoked or not.
pub async fn lookup(db: &Db, presented: &str) -> Result<Option<KeyRecord>> {
    lookup_hashed(db, &hash_key(presented)).await
}

/// [`lookup`] by the key's hash ([`hash_key`]).
pub async fn lookup_hashed(db: &Db, hash: &str) -> Result<Option<KeyRecord>> {
    let row = crate::store::sql::query(&format!("{SELECT} WHERE k.key_hash = $1"))
        .bind(hash)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(record).transpose()
}

pub async fn list(db: &Db) -> Result<Vec<KeyRecord>> {
    let rows = crate::store::sql::query(&format!("{SELECT} ORDER BY k.created_at"))
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(record).collect()
}

/// Revokes a key by id or by its prefix; returns how many were revoked.
pub async fn revoke(db: &Db, id_or_prefix: &str) -> Result<u64> {
    let done = crate::store::sql::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE revoked_at IS NULL AND (id = $2 OR prefix = $2)",
    )
    .bind(now_micros())
    .bind(id_or_prefix)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected())
}
