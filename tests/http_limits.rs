//! The HTTP server's limits over raw TCP on loopback: clients slow to send their headers or
//! their body, idle keep-alive connections, and connections beyond the limit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous: the timeouts under test are one or two seconds.
const CLOSED_WITHIN: Duration = Duration::from_secs(15);

async fn short_timeouts(store: Store) -> Option<TestApp> {
    spawn_app_with(store, |c| {
        c.http.header_timeout_ms = 1_000;
        c.http.body_timeout_ms = 1_000;
        c.http.idle_timeout_ms = 2_000;
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.gateway.addr).await.unwrap()
}

/// Reads until the server closes the connection; what it sent before closing.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(CLOSED_WITHIN, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open; it sent: {}",
        String::from_utf8_lossy(&got)
    );
    String::from_utf8_lossy(&got).into_owned()
}

both_stores!(slow_headers_are_cut_off, |store| async move {
    let Some(app) = short_timeouts(store).await else {
        return;
    };
    let mut s = connect(&app).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: railgate\r\nX-Slow: ")
        .await
        .unwrap();
    let answer = until_closed(&mut s).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    app.stop().await;
});

both_stores!(slow_bodies_get_408_and_are_closed, |store| async move {
    let Some(app) = short_timeouts(store).await else {
        return;
    };
    let mut s = connect(&app).await;
    let head = format!(
        "POST /v1/disbursements HTTP/1.1\r\nHost: railgate\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{{\"reference\": \"SLOW",
        app.key
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    app.stop().await;
});

both_stores!(idle_keep_alive_connections_are_closed, |store| async move {
    let Some(app) = short_timeouts(store).await else {
        return;
    };
    let mut s = connect(&app).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: railgate\r\n\r\n")
        .await
        .unwrap();
    // The answer, then nothing more from us: the connection is closed by the server.
    let answer = until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.stop().await;
});

both_stores!(
    connections_beyond_the_limit_wait_for_a_free_one,
    |store| async move {
        let Some(app) = spawn_app_with(store, |c| {
            c.http.max_connections = 2;
            c.http.header_timeout_ms = 60_000;
            c.http.idle_timeout_ms = 60_000;
        })
        .await
        else {
            return;
        };
        // Two connections hold both slots, each with half a request.
        let mut first = connect(&app).await;
        first.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        let mut second = connect(&app).await;
        second
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        // A third, whole request is not served while they hold them...
        let mut third = connect(&app).await;
        third
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: railgate\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buf)).await;
        assert!(early.is_err(), "served beyond the limit: {early:?}");
        // ...and is once one of them goes away.
        drop(first);
        let answer = until_closed(&mut third).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        second
            .write_all(b"Host: railgate\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = until_closed(&mut second).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        app.stop().await;
    }
);
