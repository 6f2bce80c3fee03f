//! The accept loop over real sockets: requests are served with the peer's address, and a
//! connection that does not send a request's headers in time is closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tributary_collector::server::serve_with_header_timeout;

const TIMEOUT: Duration = Duration::from_millis(300);

/// Starts a server answering `GET /peer` with the peer's IP; returns its address.
async fn start() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let app =
        Router::new().route(
            "/peer",
            get(
                |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>| async move {
                    peer.ip().to_string()
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_with_header_timeout(
        app,
        listener,
        async move {
            let _ = stopped.await;
        },
        TIMEOUT,
    ));
    (address, stop)
}

/// Reads until the server closes the connection; the bytes read and how long it took.
async fn read_to_close(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the server kept the connection open");
    (out, started.elapsed())
}

#[tokio::test]
async fn a_request_is_answered_with_the_peer_address() {
    let (address, _stop) = start().await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_to_close(&mut stream).await;
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("127.0.0.1"), "{answer}");
}

#[tokio::test]
async fn a_silent_or_trickling_connection_is_closed_after_the_header_timeout() {
    let (address, _stop) = start().await;
    // Sends nothing at all.
    let mut silent = TcpStream::connect(address).await.unwrap();
    let (_, waited) = read_to_close(&mut silent).await;
    assert!(waited >= TIMEOUT / 2, "closed after {waited:?}");

    // Sends its headers a byte at a time, slower than the timeout allows.
    let mut trickling = TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    for byte in b"GET /peer HTTP/1.1\r\nhost: x\r\n" {
        if trickling.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > 4 * TIMEOUT {
            break;
        }
    }
    let (answer, _) = read_to_close(&mut trickling).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    // hyper answers 408 or just closes; either way no request reached the handler.
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains("127.0.0.1"), "{answer}");

    // An idle keep-alive connection is closed too, after its first request was answered.
    let mut idle = TcpStream::connect(address).await.unwrap();
    idle.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, waited) = read_to_close(&mut idle).await;
    assert!(String::from_utf8_lossy(&answer).contains("127.0.0.1"));
    assert!(waited >= TIMEOUT / 2, "closed after {waited:?}");
}
