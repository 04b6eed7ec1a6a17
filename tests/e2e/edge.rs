//! The HTTP edge under hostile clients: a client that never finishes its headers is cut within
//! the header timeout, one that never finishes its body is answered 408, and a flood of
//! half-open connections beyond the connection cap does not keep a real request out.

use std::time::{Duration, Instant};

use mailroom_api::{ApiLimits, edge::EdgeLimits};
use mailroom_tests::{Options, TestApp};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn app_with(edge: EdgeLimits) -> Options {
    Options { in_process_worker: false, limits: ApiLimits { edge, ..Options::default().limits }, ..Options::default() }
}

/// Opens a connection and sends `bytes` of a request that never ends.
async fn half_open(app: &TestApp, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

/// Reads until the server closes; returns what it said and when it closed.
async fn until_closed(s: &mut TcpStream, within: Duration) -> (String, Instant) {
    let mut out = vec![];
    tokio::time::timeout(within, s.read_to_end(&mut out)).await.expect("the server closed the connection").ok();
    (String::from_utf8_lossy(&out).into_owned(), Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_is_cut_in_time() {
    let edge = EdgeLimits {
        header_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        ..EdgeLimits::default()
    };
    let app = TestApp::spawn_with(app_with(edge)).await;
    let started = Instant::now();
    let mut slow = half_open(&app, b"GET /health HTTP/1.1\r\nHost: mailroom\r\nX-Slow: ").await;
    let (_, closed) = until_closed(&mut slow, Duration::from_secs(10)).await;
    let took = closed - started;
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "cut after {took:?}");

    // Headers in time, a body that never comes: a 408 in our error shape, within the timeout.
    let started = Instant::now();
    let head = format!(
        "POST /v1/sends HTTP/1.1\r\nHost: mailroom\r\nAuthorization: Bearer {}\r\nIdempotency-Key: slow\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"to\": [",
        app.token
    );
    let mut slow_body = half_open(&app, head.as_bytes()).await;
    let (answer, closed) = until_closed(&mut slow_body, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\"") && answer.contains("mailroom-request-id: req_"), "{answer}");
    assert!(closed - started < Duration::from_secs(5), "answered after {:?}", closed - started);
    assert_eq!(app.count("SELECT count(*) FROM sends").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_half_open_connections_does_not_keep_a_real_request_out() {
    // A header timeout far longer than the test: only eviction can make room.
    let edge = EdgeLimits { header_timeout: Duration::from_secs(120), max_connections: 50, ..EdgeLimits::default() };
    let app = TestApp::spawn_with(app_with(edge)).await;
    let mut flood = vec![];
    for _ in 0..300 {
        flood.push(half_open(&app, b"GET /health HTTP/1.1\r\nHost: mail").await);
    }
    let started = Instant::now();
    let resp = app.get("/v1/events").send().await.unwrap();
    let status = resp.status().as_u16();
    let id = resp.headers().get("mailroom-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(id.starts_with("req_"), "every answer names its request: {id:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "served after {:?}", started.elapsed());

    // The evicted connections were closed by the server: at least 250 of the 300 read EOF.
    let mut closed = 0;
    for s in &mut flood {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(20), s.read(&mut byte)).await {
            closed += 1;
        }
    }
    assert!(closed >= 250, "only {closed} of 300 half-open connections were closed");
    // Errors carry the request id too, and answer in our shape.
    let resp = app.http.get(format!("{}/v1/nowhere", app.base)).send().await.unwrap();
    assert!(resp.headers().contains_key("mailroom-request-id"));
    drop(flood);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_idle_after_one_request_do_not_pin_every_slot() {
    let edge = EdgeLimits { header_timeout: Duration::from_secs(120), max_connections: 20, ..EdgeLimits::default() };
    let app = TestApp::spawn_with(app_with(edge)).await;
    // Twenty keep-alive connections, each answered once and then left idle.
    let mut idle = vec![];
    for _ in 0..20 {
        let mut s = half_open(&app, b"GET /health HTTP/1.1\r\nHost: mailroom\r\n\r\n").await;
        let mut seen = vec![];
        let mut buf = [0u8; 512];
        while !String::from_utf8_lossy(&seen).contains("\r\n\r\nok") {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "the server answered");
            seen.extend_from_slice(&buf[..n]);
        }
        idle.push(s);
    }
    let started = Instant::now();
    let resp = app.get("/v1/events").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5), "served after {:?}", started.elapsed());
    drop(idle);
    app.stop().await;
}
