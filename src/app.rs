//! Assembling and running the gateway: store, rails, dispatcher and HTTP server.

use crate::api::{self, AppState};
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::rails::Rails;
use crate::store::{jobs, Db, Kind};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen: {0}")]
    Listen(std::io::Error),
}

/// A running gateway.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
}

impl Running {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, drains the dispatcher, and waits for both.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Connects, migrates, binds the listener, then starts the API and the dispatcher.
///
/// The listener is bound before the rails are built so that `public_url` can name the real
/// port when the configuration asked for port 0.
pub async fn start(mut cfg: Config, listener: Option<TcpListener>) -> Result<Running, AppError> {
    let db = Db::connect_with(cfg.database()?, cfg.pool_sizes()).await?;
    db.migrate().await?;
    if db.kind() == Kind::Sqlite {
        // One instance per SQLite file: whatever the last process leased is ours again.
        jobs::release(&db, None).await?;
    }
    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(cfg.listen)
            .await
            .map_err(AppError::Listen)?,
    };
    let addr = listener.local_addr().map_err(AppError::Listen)?;
    let tls = crate::serve::ServerTls::load(&cfg.http)?;
    if cfg.public_url.is_none() {
        let scheme = if tls.is_some() { "https" } else { "http" };
        cfg.public_url = Some(format!("{scheme}://{addr}"));
    }
    let rails = Rails::from_config(&cfg, crate::adapters::build)?;
    let rechecks = crate::dispatch::recheck::policies(&cfg, &rails)?;
    crate::dispatch::recheck::sync_policies(&db, &rechecks).await?;
    let cfg = Arc::new(cfg);
    let state = AppState {
        db: db.clone(),
        rails: Arc::new(rails),
        cfg: cfg.clone(),
        wake: Arc::new(Notify::new()),
        metrics: crate::telemetry::metrics(),
        intake: crate::api::intake::Intake::start(db.clone()),
        group: crate::callbacks::CallbackGroup::start(db.clone()),
        keys: Arc::default(),
        progress: Arc::default(),
    };
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    // Background work takes its connections from its own pool (see `store::Db`).
    let background = db.background();
    if cfg.dispatch.enabled {
        let d = Dispatcher {
            db: background.clone(),
            rails: state.rails.clone(),
            cfg: cfg.dispatch.clone(),
            worker_id: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            wake: state.wake.clone(),
            webhooks: crate::notify::Sender::new(cfg.notify.clone())?,
            answers: crate::dispatch::answers::Answers::start(
                background.clone(),
                cfg.dispatch.max_submit_tries,
            ),
        };
        tasks.spawn(d.run(stop.clone()));
        // Where the dispatcher runs, so do the bank watchers.
        crate::bank_watch::spawn(&state.rails, &background, &stop, &mut tasks);
        // And the readers of open rail batches (payrolls).
        crate::batches::spawn_poller(&background, &cfg, &state.rails, &stop, &mut tasks);
    }
    // On PostgreSQL, other instances learn from this one's heartbeat that the idempotency
    // keys it holds in flight are still being worked on. It beats on a connection of its
    // own, and until the server has drained: a key must not pass for dead while its request
    // still runs.
    let heartbeat_stop = CancellationToken::new();
    if db.kind() == Kind::Postgres {
        let own = Db::connect(&cfg.database_url, 1).await?;
        crate::store::instances::beat(&own, db.instance()).await?;
        let every = std::time::Duration::from_millis((cfg.instance_stale_ms / 5).max(100));
        tasks.spawn(crate::store::instances::heartbeat(
            own,
            db.instance(),
            every,
            heartbeat_stop.clone(),
        ));
    }
    let app = api::router(state.clone());
    let (http, s) = (cfg.http.clone(), stop.clone());
    tasks.spawn(async move {
        crate::serve::serve(listener, app, http, tls, s).await;
        heartbeat_stop.cancel();
    });
    tracing::info!(%addr, store = ?db.kind(), "Railgate listening");
    Ok(Running {
        addr,
        state,
        stop,
        tasks,
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
