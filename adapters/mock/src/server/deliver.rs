//! Runs a payment's timeline after acceptance: settles it and posts its signed callbacks.

use super::scenario::{Action, Step};
use super::state::{CallbackRecord, DeliveryResult, Transaction};
use super::Shared;
use crate::signature::{sign, EVENT_ID_HEADER, SIGNATURE_HEADER};
use crate::wire::{CallbackBody, MockCode, MockStatus};
use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Starts the timeline of a newly accepted payment on its own task.
pub(crate) fn start(shared: Arc<Shared>, generation: u64, txn: &Transaction) {
    let steps = txn.scenario.timeline(&shared.config);
    if steps.is_empty() {
        return;
    }
    let request_id = txn.request_id;
    tokio::spawn(async move { run(&shared, generation, request_id, steps).await });
}

async fn run(shared: &Shared, generation: u64, request_id: Uuid, steps: Vec<Step>) {
    let start = tokio::time::Instant::now();
    for step in steps {
        let due = start.checked_add(step.at).unwrap_or(start);
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = tokio::time::sleep_until(due) => {}
        }
        match step.action {
            Action::Settle => {
                let mut state = shared.lock();
                if state.generation != generation {
                    return;
                }
                state.settle(request_id, Utc::now());
            }
            Action::Notify {
                status,
                code,
                copies,
                forged,
            } => {
                for _ in 0..copies {
                    let notice = Notice {
                        request_id,
                        status,
                        code: code.clone(),
                        forged,
                    };
                    if !notify(shared, generation, notice).await {
                        return;
                    }
                }
            }
        }
    }
}

struct Notice {
    request_id: Uuid,
    status: MockStatus,
    code: Option<MockCode>,
    forged: bool,
}

/// Builds, signs and posts one callback; false when the timeline should stop (a reset or a
/// shutdown happened).
async fn notify(shared: &Shared, generation: u64, notice: Notice) -> bool {
    let event_id = Uuid::new_v4();
    let (url, body, dropped) = {
        let state = shared.lock();
        if state.generation != generation {
            return false;
        }
        let Some(txn) = state.get(&notice.request_id) else {
            return false;
        };
        let body = CallbackBody {
            event_id,
            request_id: txn.request_id,
            transaction_id: txn.transaction_id.clone(),
            status: notice.status,
            code: notice.code.clone(),
            receipt: (notice.status == MockStatus::Success).then(|| txn.receipt.clone()),
            amount: txn.amount.to_decimal_string(),
            currency: txn.amount.currency().code().to_owned(),
            occurred_at: Utc::now(),
        };
        (txn.callback_url.clone(), body, state.faults.drop_callbacks)
    };
    let result = if dropped {
        DeliveryResult::Dropped
    } else {
        let Ok(bytes) = serde_json::to_vec(&body) else {
            return false;
        };
        let secret = if notice.forged {
            // Any other key gives a signature the receiver must refuse.
            format!("{}-forged", shared.config.callback_secret)
        } else {
            shared.config.callback_secret.clone()
        };
        tokio::select! {
            () = shared.cancel.cancelled() => return false,
            result = post(shared, &url, event_id, &secret, &bytes) => result,
        }
    };
    tracing::debug!(%event_id, request_id = %notice.request_id, ?result, "Mock rail callback");
    let mut state = shared.lock();
    if state.generation != generation {
        return false;
    }
    state.record_callback(CallbackRecord {
        event_id,
        request_id: notice.request_id,
        status: notice.status,
        forged: notice.forged,
        result,
    });
    true
}

#[derive(Debug)]
pub(crate) enum PostError {
    Unreachable,
    Status(u16),
}

impl PostError {
    /// Unreachable receivers and server errors are worth another try. Any other 4xx is the
    /// receiver's final word on these exact bytes (a refused signature stays refused), so a
    /// resend could not change it.
    fn is_transient(&self) -> bool {
        match self {
            PostError::Unreachable => true,
            PostError::Status(code) => *code >= 500 || *code == 408 || *code == 429,
        }
    }
}

pub(crate) async fn post(
    shared: &Shared,
    url: &str,
    event_id: Uuid,
    secret: &str,
    body: &[u8],
) -> DeliveryResult {
    let once = || async {
        // One of the rail's senders per try; a backoff between tries holds none.
        let _sender = shared
            .senders
            .acquire()
            .await
            .map_err(|_| PostError::Unreachable)?;
        // Signed per delivery: the timestamp is the time of sending, not of the event.
        let signature = sign(secret, Utc::now().timestamp(), body);
        let response = shared
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, event_id.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|_| PostError::Unreachable)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            Ok(status)
        } else {
            Err(PostError::Status(status))
        }
    };
    // Bounded: five tries within about two seconds.
    let policy = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_millis(800))
        .with_max_times(4);
    match once.retry(policy).when(PostError::is_transient).await {
        Ok(status) | Err(PostError::Status(status)) => DeliveryResult::Answered { status },
        Err(PostError::Unreachable) => DeliveryResult::Unreachable,
    }
}
