//! Running a webhook job: send one delivery, signed, and record what happened. An endpoint of
//! the openIMIS format gets openIMIS's callback body and the client's token instead of the
//! event (`notify::openimis`).

use super::deliveries::{self, Status, Tried};
use super::endpoints::Format;
use super::signature;
use crate::config::{ConfigError, NotifyConfig};
use crate::dispatch::backoff;
use crate::store::jobs::{self, Job};
use crate::store::{now_micros, Db, Result, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// What sends webhooks: one HTTP client (connection reuse) and the retry policy.
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
    cfg: NotifyConfig,
    sending: Arc<Semaphore>,
}

impl Sender {
    /// The client of every webhook and openIMIS delivery, with `[notify.tls]` when given.
    pub fn new(cfg: NotifyConfig) -> std::result::Result<Sender, ConfigError> {
        let tls = cfg
            .tls
            .as_ref()
            .map(|t| t.load())
            .transpose()
            .map_err(|e| ConfigError::Invalid(format!("notify.tls: {e}")))?;
        let http = railgate_rail::tls::client_builder(tls.as_ref())
            .timeout(Duration::from_millis(cfg.timeout_ms))
            // A receiver that moved must be reconfigured, not followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("railgate-webhooks")
            .build()
            .map_err(|e| {
                ConfigError::Invalid(format!("notify: cannot build the HTTP client: {e}"))
            })?;
        let sending = Arc::new(Semaphore::new(cfg.max_in_flight.max(1)));
        Ok(Sender { http, cfg, sending })
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Sends the job's delivery unless an earlier one of the same order key is still waiting.
pub async fn run(db: &Db, sender: &Sender, job: &Job) -> Result<()> {
    let id = job
        .payload
        .as_deref()
        .and_then(|p| Uuid::parse_str(p).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("webhook job {} has no delivery", job.id)))?;
    // No connection is held across this function's awaits: each read and each write takes
    // one for itself and gives it back, and none is held while the receiver is sent to.
    // (Holding one while the reads below took more exhausted the pool as soon as as many
    // deliveries ran as it had connections, and stalled the API with it.)
    let Some(d) = deliveries::outgoing(db, id).await? else {
        return finish(db, job).await;
    };
    if d.status != Status::Pending.as_str() {
        return finish(db, job).await;
    }
    if d.endpoint_deleted {
        let mut tx = db.begin().await?;
        deliveries::record(&mut tx, &d, None, Status::Abandoned, now_micros()).await?;
        jobs::finish(&mut tx, job).await?;
        tx.commit().await?;
        return Ok(());
    }
    if let Some(next) = deliveries::waiting_on(db, &d).await? {
        // Woken sooner by the earlier delivery when it is done; this is the fallback.
        let at = next
            .max(now_micros())
            .saturating_add(micros(Duration::from_secs(1)));
        return retry_at(db, job, at).await;
    }
    // At most `max_in_flight` sends at once; a job that finds none free comes back shortly
    // rather than hold a dispatcher slot while it waits.
    let Ok(_permit) = sender.sending.clone().try_acquire_owned() else {
        let at = now_micros().saturating_add(micros(Duration::from_millis(500)));
        return retry_at(db, job, at).await;
    };

    let body = match d.format {
        Format::Standard => d.event.view().to_string(),
        Format::OpenImis => match super::openimis::callback_body(db, &d.event).await? {
            Ok(body) => body,
            Err(why) => {
                // openIMIS could never take it: abandoned at once, the reason in its history.
                tracing::error!(delivery = %d.id, endpoint = %d.endpoint_id, reason = %why, "openIMIS delivery abandoned");
                let now = now_micros();
                let tried = Tried {
                    at: now,
                    status_code: None,
                    error: Some(why),
                    duration_ms: 0,
                };
                let mut tx = db.begin().await?;
                deliveries::record(&mut tx, &d, Some(&tried), Status::Abandoned, now).await?;
                jobs::finish(&mut tx, job).await?;
                tx.commit().await?;
                return Ok(());
            }
        },
    };
    let msg_id = d.event.id.to_string();
    let ts = chrono::Utc::now().timestamp();
    let Some(sig) = signature::sign(&d.secret, &msg_id, ts, body.as_bytes()) else {
        return Err(StoreError::Corrupt(format!(
            "webhook endpoint {} has an unusable secret",
            d.endpoint_id
        )));
    };
    let started = Instant::now();
    let at = now_micros();
    let mut request = sender
        .http
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig);
    if let Some(token) = &d.auth_token {
        request = request.bearer_auth(token);
    }
    let request = request.body(body).send();
    // Bounded even if the client was built without its timeout.
    let bound = Duration::from_millis(sender.cfg.timeout_ms.saturating_add(1_000));
    let sent = tokio::time::timeout(bound, request).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let tried = match &sent {
        Ok(Ok(r)) => Tried {
            at,
            status_code: Some(r.status().as_u16()),
            error: (!r.status().is_success()).then(|| format!("answered {}", r.status())),
            duration_ms,
        },
        // What went wrong, in words that name neither the URL nor the body (a TLS failure
        // says which certificate was refused).
        Ok(Err(e)) => Tried {
            at,
            status_code: None,
            error: Some({
                let failure = railgate_rail::transport::send_failure(e);
                if failure.tls {
                    failure.cause
                } else if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    "could not connect".to_owned()
                } else {
                    "the request failed".to_owned()
                }
            }),
            duration_ms,
        },
        Err(_) => Tried {
            at,
            status_code: None,
            error: Some("timed out".to_owned()),
            duration_ms,
        },
    };
    let delivered = matches!(&sent, Ok(Ok(r)) if r.status().is_success());
    let now = now_micros();
    let tries = d.tries.saturating_add(1);
    let age = now.saturating_sub(d.created_at);
    let give_up = micros(Duration::from_secs(sender.cfg.give_up_after_secs));
    let mut tx = db.begin().await?;
    if delivered {
        deliveries::record(&mut tx, &d, Some(&tried), Status::Delivered, now).await?;
        jobs::finish(&mut tx, job).await?;
        metrics::counter!("railgate_webhooks_total", "result" => "delivered").increment(1);
    } else if age >= give_up {
        tracing::error!(delivery = %d.id, endpoint = %d.endpoint_id, tries, "Webhook abandoned after its retry period");
        deliveries::record(&mut tx, &d, Some(&tried), Status::Abandoned, now).await?;
        jobs::finish(&mut tx, job).await?;
        metrics::counter!("railgate_webhooks_total", "result" => "abandoned").increment(1);
    } else {
        let next = now.saturating_add(backoff::micros(
            tries,
            Duration::from_millis(sender.cfg.retry_min_ms),
            Duration::from_millis(sender.cfg.retry_max_ms),
        ));
        tracing::warn!(delivery = %d.id, endpoint = %d.endpoint_id, tries, error = tried.error.as_deref().unwrap_or(""), "Webhook not delivered; will retry");
        deliveries::record(&mut tx, &d, Some(&tried), Status::Pending, next).await?;
        jobs::retry_at(&mut tx, job, next, tried.error.as_deref()).await?;
        metrics::counter!("railgate_webhooks_total", "result" => "retry").increment(1);
    }
    tx.commit().await?;
    Ok(())
}

async fn finish(db: &Db, job: &Job) -> Result<()> {
    let mut conn = db.pool().acquire().await?;
    jobs::finish(&mut conn, job).await
}

async fn retry_at(db: &Db, job: &Job, at: i64) -> Result<()> {
    let mut conn = db.pool().acquire().await?;
    jobs::retry_at(&mut conn, job, at, None).await
}
