//! Sign-ins to the finance officers' page. The browser holds a random session id; the store
//! holds only its hash, the key it was made from and when it expires.

use super::keys::{self, KeyRecord};
use super::{now_micros, Db, Result};
use uuid::Uuid;

/// A new session id: 32 random bytes (256 bits), base64url without padding.
fn new_id() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Opens a session for the key, lasting `ttl_secs`; returns the id to give the browser (shown
/// nowhere else, stored only hashed). Sessions past their expiry are removed on the way.
pub async fn create(db: &Db, key_id: Uuid, ttl_secs: u32) -> Result<String> {
    let now = now_micros();
    crate::store::sql::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    let id = new_id();
    let expires = now.saturating_add(i64::from(ttl_secs).saturating_mul(1_000_000));
    crate::store::sql::query(
        "INSERT INTO sessions (id_hash, key_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(keys::hash_key(&id))
    .bind(key_id.to_string())
    .bind(now)
    .bind(expires)
    .execute(db.pool())
    .await?;
    Ok(id)
}

/// The key behind a presented session id, while the session lasts (revoked or not: the
/// caller refuses a revoked key).
pub async fn lookup(db: &Db, presented: &str) -> Result<Option<KeyRecord>> {
    let row = crate::store::sql::query(&format!(
        "{} JOIN sessions s ON s.key_id = k.id WHERE s.id_hash = $1 AND s.expires_at > $2",
        keys::SELECT
    ))
    .bind(keys::hash_key(presented))
    .bind(now_micros())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(keys::record).transpose()
}

/// Ends a session (signing out): its id is refused from now on, wherever it was copied to.
pub async fn delete(db: &Db, presented: &str) -> Result<()> {
    crate::store::sql::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(keys::hash_key(presented))
        .execute(db.pool())
        .await?;
    Ok(())
}
