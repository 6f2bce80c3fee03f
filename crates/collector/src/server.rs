//! The accept loop: every connection served by hyper with a timer, so that a client cannot hold
//! a connection open by sending nothing.
//!
//! `axum::serve` runs hyper without a timer, which leaves hyper's header-read timeout off: a
//! connection that never sends a request (or sends its headers a byte a minute) was kept for
//! ever, and a thousand of them exhausted the process's file descriptors, after which no tenant
//! could connect. Here each HTTP/1 connection must deliver a request's headers within
//! [`HEADER_READ_TIMEOUT`] of starting to wait for them, which includes a new connection that
//! sends nothing and an idle keep-alive connection waiting for its next request.
//!
//! HTTP/1.1 only. Cleartext HTTP/2 (prior knowledge, as `axum::serve` also offered) is not
//! served: no tracker, SDK or tool of ours uses it, and telling it from HTTP/1 means reading
//! the connection's first bytes before any timeout applies — the very hole closed here. TLS,
//! and with it HTTP/2, belongs to the proxy in front.

use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

/// How long a connection may take to send a request's headers, counted from when the server
/// starts waiting for them (so also how long an idle keep-alive connection is kept).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long shutdown waits for requests in flight before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// After a failed accept (out of file descriptors, most often), how long to wait before the
/// next: the condition lasts, and retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight finish
/// (up to [`SHUTDOWN_GRACE`]). Handlers see the peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    app: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_header_timeout(app, listener, shutdown, HEADER_READ_TIMEOUT).await
}

/// [`serve`] with another header-read timeout (tests use a short one).
pub async fn serve_with_header_timeout(
    app: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers go out at once rather than waiting for more to send.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?SHUTDOWN_GRACE,
            "requests still in flight at shutdown were cut off"
        );
    }
    Ok(())
}
