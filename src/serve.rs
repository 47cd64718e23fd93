//! The HTTP server loop: the API's router on HTTP/1.1 connections, with what `axum::serve`
//! does not give: a limit on connections held at once, and timeouts on clients that are slow
//! to send their headers or their body, or that hold a connection and do nothing with it.
//!
//! - Connections: at most `http.max_connections` are served at once; the next is accepted
//!   when one closes (until then it waits in the listen backlog).
//! - Headers: hyper's header read timeout (`http.header_timeout_ms`). Hyper starts it as soon
//!   as a connection waits for a request's head, so it also closes a keep-alive connection
//!   that sends no next request within that time.
//! - Body: a request body that sends nothing for `http.body_timeout_ms` fails with 408 and the
//!   connection is closed (tower-http's `TimeoutBody`, reset by every chunk received, so a
//!   large upload arriving steadily is never cut).
//! - Idle: a connection with no request in hand that moves no byte either way for
//!   `http.idle_timeout_ms` is closed (a client that stops reading its response, say).
//!
//! Stopping: no new connection is accepted, each open one finishes the request in hand and
//! closes, and `serve` returns once all are closed, as `axum::serve`'s graceful shutdown does.
//!
//! TLS (`[http.tls]`): each connection's handshake runs in its own task, bounded by the header
//! timeout, before hyper sees it. With `client_ca_*` every connection must present a client
//! certificate from that CA. With `rail_client_ca_files` the listener asks every client for a
//! certificate (verified against every configured CA, not required), and a request below
//! `/rails/{id}/` of a rail listed there is refused with 403 unless the connection's
//! certificate chains to that rail's own CA: a rail's callbacks can be bound to its scheme's
//! CA on the same listener as the API. Without `[http.tls]` the server speaks plain HTTP and
//! TLS is a proxy's job (see the README).

use crate::api::problem::Problem;
use crate::config::{ConfigError, HttpConfig, ServerTlsConfig};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::TryStreamExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use railgate_rail::tls::{self as rail_tls, ClientCertCheck};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::timeout::{TimeoutBody, TimeoutError};

/// The server's TLS, loaded from `[http.tls]`.
pub struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
    /// Per rail id, the CA its callbacks' client certificates must chain to.
    rails: BTreeMap<String, ClientCertCheck>,
}

impl ServerTls {
    /// Reads the certificate, key and CAs `[http.tls]` names; `None` without the table.
    pub fn load(cfg: &HttpConfig) -> Result<Option<Arc<ServerTls>>, ConfigError> {
        cfg.tls.as_ref().map(load_tls).transpose()
    }
}

fn load_tls(t: &ServerTlsConfig) -> Result<Arc<ServerTls>, ConfigError> {
    let bad = |e: rail_tls::TlsError| ConfigError::Invalid(format!("http.tls: {e}"));
    let need = |what: &str, pem: Option<Vec<u8>>| {
        pem.ok_or_else(|| {
            ConfigError::Invalid(format!("http.tls: {what}_file or {what}_env is required"))
        })
    };
    let cert = need(
        "cert",
        rail_tls::read_pem_source("certificate", t.cert_file.as_deref(), t.cert_env.as_deref())
            .map_err(bad)?,
    )?;
    let key = need(
        "key",
        rail_tls::read_pem_source("key", t.key_file.as_deref(), t.key_env.as_deref())
            .map_err(bad)?,
    )?;
    let listener_ca = rail_tls::read_pem_source(
        "client CA",
        t.client_ca_file.as_deref(),
        t.client_ca_env.as_deref(),
    )
    .map_err(bad)?;
    let mut rails = BTreeMap::new();
    // Every CA the listener accepts client certificates from: its own and each rail's.
    let mut all_cas = listener_ca.clone().unwrap_or_default();
    for (rail, path) in &t.rail_client_ca_files {
        let pem = rail_tls::read_pem_source("client CA", Some(path), None).map_err(bad)?;
        let pem = pem.unwrap_or_default();
        let check = ClientCertCheck::new(&pem)
            .map_err(|e| ConfigError::Invalid(format!("http.tls: rail {rail}: {e}")))?;
        rails.insert(rail.clone(), check);
        all_cas.push(b'\n');
        all_cas.extend_from_slice(&pem);
    }
    let asks = listener_ca.is_some() || !rails.is_empty();
    let config = rail_tls::server_config(
        &cert,
        &key,
        asks.then_some(all_cas.as_slice()),
        listener_ca.is_some(),
    )
    .map_err(bad)?;
    Ok(Arc::new(ServerTls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        rails,
    }))
}

/// The client certificate chain a TLS connection presented (empty: none).
#[derive(Clone, Default)]
struct PeerCerts(Arc<Vec<rustls::pki_types::CertificateDer<'static>>>);

/// Serves `router` on `listener` until `stop` is cancelled, then drains open connections;
/// over TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    cfg: HttpConfig,
    tls: Option<Arc<ServerTls>>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(cfg.header_timeout_ms.max(1)));
    let limits = Limits {
        body: Duration::from_millis(cfg.body_timeout_ms.max(1)),
        idle: Duration::from_millis(cfg.idle_timeout_ms.max(1)),
        handshake: Duration::from_millis(cfg.header_timeout_ms.max(1)),
    };
    let mut open = JoinSet::new();
    loop {
        while open.try_join_next().is_some() {}
        // A slot first: over the limit, connections wait in the backlog, unread.
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "Accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            router: router.clone(),
            builder: builder.clone(),
            limits,
            stop: stop.clone(),
            tls: tls.clone(),
        };
        open.spawn(async move {
            conn.run(stream, peer).await;
            drop(permit);
        });
    }
    drop(listener);
    while open.join_next().await.is_some() {}
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    body: Duration,
    idle: Duration,
    /// A TLS handshake must finish within this (the header timeout).
    handshake: Duration,
}

struct Connection {
    router: Router,
    builder: hyper::server::conn::http1::Builder,
    limits: Limits,
    stop: CancellationToken,
    tls: Option<Arc<ServerTls>>,
}

impl Connection {
    async fn run(self, stream: TcpStream, peer: SocketAddr) {
        let activity = Activity::new();
        let watched = Watched {
            inner: stream,
            activity: activity.clone(),
        };
        let Some(tls) = self.tls.clone() else {
            return self.serve_io(watched, peer, activity, None).await;
        };
        let accepted = tokio::time::timeout(self.limits.handshake, tls.acceptor.accept(watched));
        match accepted.await {
            Ok(Ok(stream)) => {
                let certs = PeerCerts(Arc::new(
                    stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .map(<[_]>::to_vec)
                        .unwrap_or_default(),
                ));
                self.serve_io(stream, peer, activity, Some((tls, certs)))
                    .await
            }
            Ok(Err(e)) => tracing::info!(error = %e, %peer, "TLS handshake refused"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    async fn serve_io<I>(
        self,
        io: I,
        peer: SocketAddr,
        activity: Activity,
        tls: Option<(Arc<ServerTls>, PeerCerts)>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        let router = self.router;
        let body_timeout = self.limits.body;
        let seen = activity.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let router = router.clone();
            let busy = Busy::enter(&seen);
            let refused = tls
                .as_ref()
                .and_then(|(tls, certs)| rail_certificate_refused(tls, certs, req.uri().path()));
            async move {
                let response = match refused {
                    Some(problem) => problem,
                    None => handle(router, req, peer, body_timeout).await,
                };
                drop(busy);
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let idle = self.limits.idle;
        let mut tick = tokio::time::interval(
            idle.checked_div(4)
                .unwrap_or(idle)
                .max(Duration::from_millis(10)),
        );
        let mut draining = false;
        loop {
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "Connection ended");
                    }
                    return;
                }
                _ = self.stop.cancelled(), if !draining => {
                    // Finish the request in hand, then close.
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                _ = tick.tick() => {
                    if activity.idle_for() >= idle {
                        tracing::debug!("Closing an idle connection");
                        // Dropping the connection closes its socket.
                        return;
                    }
                }
            }
        }
    }
}

/// A request below `/rails/{id}/` of a rail bound to its own CA, on a connection whose client
/// certificate does not chain to that CA: its 403.
fn rail_certificate_refused(tls: &ServerTls, certs: &PeerCerts, path: &str) -> Option<Response> {
    let rail = path.strip_prefix("/rails/")?.split('/').next()?;
    let check = tls.rails.get(rail)?;
    let why = check.check(&certs.0).err()?;
    tracing::warn!(rail, reason = %why, "Rail callback refused: client certificate");
    Some(
        Problem::new(
            StatusCode::FORBIDDEN,
            "client-certificate",
            "Client certificate refused",
            format!("rail {rail} requires a client certificate from its own CA: {why}"),
        )
        .into_response(),
    )
}

/// One request through the router, its peer's address given as axum's `ConnectInfo`, its
/// body under the body timeout.
async fn handle(
    router: Router,
    req: Request<Incoming>,
    peer: SocketAddr,
    body_timeout: Duration,
) -> Response {
    let timed_out = Arc::new(AtomicBool::new(false));
    let flag = timed_out.clone();
    let mut req = req.map(|incoming| {
        let body = Body::new(TimeoutBody::new(body_timeout, incoming));
        Body::from_stream(body.into_data_stream().inspect_err(move |e| {
            if std::error::Error::source(e).is_some_and(|s| s.is::<TimeoutError>()) {
                flag.store(true, Ordering::Relaxed);
            }
        }))
    });
    req.extensions_mut().insert(ConnectInfo(peer));
    let response = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if timed_out.load(Ordering::Relaxed) {
        // Whatever the handler made of a body that stopped coming, the client is told why.
        let mut r = Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "The request body did not arrive in time",
            format!(
                "nothing of the body arrived for {} ms",
                body_timeout.as_millis()
            ),
        )
        .into_response();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    response
}

/// When the connection last moved a byte, and how many requests it has in hand.
#[derive(Clone)]
struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last byte read or written.
    last_ms: Arc<AtomicU64>,
    busy: Arc<AtomicUsize>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            busy: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long nothing has happened: zero while a request is in hand (its handler may
    /// take its time; its body has its own timeout).
    fn idle_for(&self) -> Duration {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A request in hand, for as long as it lives.
struct Busy(Activity);

impl Busy {
    fn enter(a: &Activity) -> Busy {
        a.busy.fetch_add(1, Ordering::Relaxed);
        Busy(a.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The socket, noting each byte moved. Hand-written: no crate offers an I/O wrapper that
/// records activity, and this one is a few delegating lines.
struct Watched<S> {
    inner: S,
    activity: Activity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
