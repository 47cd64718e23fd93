//! The mock rail: a small mobile-money-like rail with its own HTTP API, run in-process on its
//! own port. It follows the sandbox scenario table (see the crate's README) and counts what it
//! paid, so tests can prove nothing was paid twice.

mod api;
mod batch;
mod control;
mod deliver;
mod scenario;
mod state;

pub use batch::MAX_LINES as MAX_BATCH_LINES;
pub use state::{CallbackRecord, DeliveryResult};

use crate::wire::{Faults, PayoutCount};
use axum::routing::{get, post};
use axum::Router;
use state::State;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How the mock rail runs. Build it with [`MockRailConfig::new`] and adjust the delays with
/// struct update syntax.
#[derive(Clone)]
pub struct MockRailConfig {
    pub bind: SocketAddr,
    /// The HMAC key its callbacks are signed with; the adapter must hold the same.
    pub callback_secret: String,
    /// Delay from acceptance to the first callback.
    pub callback_delay_ms: u64,
    /// Scenario 04: how long the payment stays pending.
    pub pending_delay_ms: u64,
    /// Scenario 11: delay between the failure callback and the success callback.
    pub conflict_delay_ms: u64,
    /// How long scenario 12's inquiry (and any other hang) lasts before a 504.
    pub hang_ms: u64,
}

impl MockRailConfig {
    pub fn new(bind: SocketAddr, callback_secret: impl Into<String>) -> Self {
        MockRailConfig {
            bind,
            callback_secret: callback_secret.into(),
            callback_delay_ms: 100,
            pending_delay_ms: 3000,
            conflict_delay_ms: 2000,
            hang_ms: 60_000,
        }
    }

    /// On loopback, on a port the system picks.
    pub fn local(callback_secret: impl Into<String>) -> Self {
        MockRailConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), callback_secret)
    }
}

/// Loopback, port 0, the default delays and an empty secret: set `callback_secret` to the one
/// the adapter holds.
impl Default for MockRailConfig {
    fn default() -> Self {
        MockRailConfig::local(String::new())
    }
}

impl fmt::Debug for MockRailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockRailConfig")
            .field("bind", &self.bind)
            .field("callback_secret", &"***")
            .field("callback_delay_ms", &self.callback_delay_ms)
            .field("pending_delay_ms", &self.pending_delay_ms)
            .field("conflict_delay_ms", &self.conflict_delay_ms)
            .field("hang_ms", &self.hang_ms)
            .finish()
    }
}

/// What the handlers and the callback tasks share.
pub(crate) struct Shared {
    pub config: MockRailConfig,
    state: Mutex<State>,
    pub cancel: CancellationToken,
    pub http: reqwest::Client,
    /// Callbacks being posted at once are bounded, as a real rail's notifier is: without a
    /// bound, a burst of settlements opens a connection per callback, and a receiver that
    /// limits its connections leaves the rest unread in its backlog until they time out.
    pub senders: tokio::sync::Semaphore,
}

/// The most callbacks the mock rail posts at once (and connections it keeps to a receiver).
pub(crate) const CALLBACK_SENDERS: usize = 256;

impl Shared {
    fn new(config: MockRailConfig) -> io::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_idle_timeout(railgate_rail::tls::POOL_IDLE)
            .pool_max_idle_per_host(CALLBACK_SENDERS)
            .build()
            .map_err(io::Error::other)?;
        Ok(Shared {
            config,
            state: Mutex::new(State::default()),
            cancel: CancellationToken::new(),
            http,
            senders: tokio::sync::Semaphore::new(CALLBACK_SENDERS),
        })
    }

    /// The lock is never held across an await, so a poisoned lock only means a panic in a
    /// short critical section; the state it guards is still consistent enough for a mock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps unless the rail is shutting down; false when it is.
    pub(crate) async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            () = self.cancel.cancelled() => false,
            () = tokio::time::sleep(duration) => true,
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/payouts", post(api::payouts))
        .route("/v1/collections", post(api::collections))
        .route("/v1/transactions/{request_id}", get(api::transaction))
        .route("/v1/reversals", post(api::reversals))
        .route("/v1/reversals/{reversal_id}", get(api::reversal))
        .route("/v1/batches", post(batch::create))
        .route("/v1/batches/{batch_id}", get(batch::results))
        .route("/_control/payouts", get(control::payouts))
        .route("/_control/callbacks", get(control::callbacks))
        .route(
            "/_control/faults",
            get(control::faults).post(control::set_faults),
        )
        .route("/_control/reset", post(control::reset))
        .route("/_control/statement", get(control::statement))
        .with_state(shared)
}

/// A running mock rail. Dropping it stops the server too; [`MockRail::shutdown`] also waits.
pub struct MockRail {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<io::Result<()>>>,
}

/// Binds `config.bind` and serves on a background task.
pub async fn spawn(config: MockRailConfig) -> io::Result<MockRail> {
    let listener = TcpListener::bind(config.bind).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(config)?);
    let cancel = shared.cancel.clone();
    let app = router(Arc::clone(&shared));
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await
    });
    tracing::info!(%addr, "Mock rail listening");
    Ok(MockRail {
        addr,
        shared,
        task: Some(task),
    })
}

/// Binds and serves until the process ends (the standalone `mock-rail` command).
pub async fn serve_forever(config: MockRailConfig) -> io::Result<()> {
    let listener = TcpListener::bind(config.bind).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(config)?);
    tracing::info!(%addr, "Mock rail listening");
    axum::serve(listener, router(shared)).await
}

impl MockRail {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every payment the rail recorded, with how many times money moved for it.
    pub fn payouts(&self) -> Vec<PayoutCount> {
        self.shared.lock().payouts()
    }

    /// How many times money moved for one attempt (0 when the rail never recorded it).
    pub fn paid_count(&self, attempt_id: Uuid) -> u32 {
        self.payouts()
            .iter()
            .find(|p| p.attempt_id == attempt_id)
            .map_or(0, |p| p.count)
    }

    /// How many status inquiries about a payment (`GET /v1/transactions/{id}`) the rail took.
    pub fn inquiries(&self) -> u64 {
        self.shared.lock().inquiries
    }

    /// Every callback delivery the rail attempted, in order.
    pub fn callbacks(&self) -> Vec<CallbackRecord> {
        self.shared.lock().callbacks()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }

    /// From now on, status answers report ten times the amount the rail holds (until a reset).
    pub fn misreport_amounts(&self, on: bool) {
        self.shared.lock().misreport_amount = on;
    }

    /// Forgets every payment, movement, callback and fault.
    pub fn reset(&self) {
        self.shared.lock().reset();
    }

    pub fn statement_csv(&self) -> String {
        self.shared.lock().statement_csv()
    }

    /// Stops accepting, ends hanging answers and pending callbacks, and waits (bounded) for
    /// the server to finish.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.shared.cancel.cancel();
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(io::Error::other(join)),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "mock rail did not stop within 5 s",
            )),
        }
    }
}

impl Drop for MockRail {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
