//! A small HTTP/1.1 server on a thread of its own (a current-thread tokio runtime and hyper),
//! over TLS or not: the reference receiver (`pnp-gateway receive`) and the metrics endpoint.
//! The gateway itself stays synchronous; only these peers-facing listeners are async.
//!
//! Strangers can reach a listener, so everything a connection may hold is bounded ([`Limits`]):
//! the number of connections (a permit is taken before `accept`, so connections over the cap wait
//! in the kernel's backlog and hold no descriptor of ours), the time for the TLS handshake and for
//! each request head (hyper's header read timeout, which also runs while a kept-alive connection
//! waits for its next request), the time a connection may move no bytes at all ([`idle`]), and the
//! bytes of request bodies held in memory, per request and in total ([`body::BodyBudget`]). When
//! the process runs out of descriptors, accepting pauses and retries; the loop never ends, and
//! since it runs on its own thread, the gateway's ingest and delivery never wait for it.

pub mod body;
mod idle;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use body::{BodyBudget, BodyRefused};

/// What one listener allows a connection; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// For the TLS handshake, and for each request head from when the connection waits for it.
    pub header_timeout: Duration,
    /// A connection that sends and receives nothing for this long is closed; also the time a
    /// whole request body must arrive in.
    pub idle_timeout: Duration,
    /// The largest request body read (413 beyond).
    pub max_body: usize,
    /// Request bodies held in memory at once, over all connections (503 beyond, to retry).
    pub max_inflight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_body: 16 << 20,
            max_inflight: 64 << 20,
        }
    }
}

/// Serves every connection on `listener` with `handler` under `limits`, until the process ends.
/// With `tls`, a connection whose handshake fails or is too slow is dropped without an answer.
pub fn spawn<H, F>(
    listener: std::net::TcpListener,
    name: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    handler: H,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let name = name.to_string();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                accept_loop(listener, &name, tls, limits, handler).await;
            })
        })?;
    Ok(())
}

async fn accept_loop<H, F>(
    listener: tokio::net::TcpListener,
    name: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let limits = Arc::new(limits);
    let mut failing = false;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors (or another passing failure): wait and try again; one
                // warning when it starts, one line when accepting works again.
                if !failing {
                    tracing::warn!(listener = name, error = %e, "cannot accept connections; retrying");
                    failing = true;
                }
                drop(slot);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if failing {
            tracing::info!(listener = name, "accepting connections again");
            failing = false;
        }
        let _ = tcp.set_nodelay(true);
        let (acceptor, handler, limits) = (acceptor.clone(), handler.clone(), limits.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match acceptor {
                None => connection(tcp, &limits, handler).await,
                Some(a) => {
                    let handshake = tokio::time::timeout(limits.header_timeout, a.accept(tcp));
                    if let Ok(Ok(stream)) = handshake.await {
                        connection(stream, &limits, handler).await;
                    }
                }
            }
        });
    }
}

async fn connection<S, H, F>(stream: S, limits: &Limits, handler: H)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let response = handler(req);
        async move { Ok::<_, hyper::Error>(response.await) }
    });
    let (stream, activity) = idle::Watched::new(stream);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    idle::close_when_idle(conn, &activity, limits.idle_timeout).await;
}
