//! The gateway's one HTTP/1.1 server: the connection loop under which every listener of the
//! gateway runs an axum router — the service's API (`service::api`), the plain metrics listener
//! and the reference receiver (`pnp-gateway receive`) — over TLS or not.
//!
//! Strangers can reach a listener, so everything a connection may hold is bounded ([`Limits`]).
//! What is per connection lives here, because axum's `serve` exposes none of it: the number of
//! connections (a permit is taken before `accept`, so connections over the cap wait in the
//! kernel's backlog and hold no descriptor of ours), the time for the TLS handshake and for each
//! request head (hyper's header read timeout, which also runs while a kept-alive connection waits
//! for its next request; it is silently off unless hyper is given a timer), and the time a
//! connection may move no bytes at all ([`idle`]). What is per request is a stack of tower layers
//! ([`layers::bounded`]): the body size, the time a body may take, and the requests served at
//! once, beyond which a request is shed with 503 and `Retry-After` rather than queued.
//!
//! When the process runs out of descriptors, accepting pauses and retries; the loop ends only on
//! shutdown, when it stops accepting and lets every open connection finish its request.

mod idle;
pub mod layers;

use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What one listener allows; see the module documentation.
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
    /// Request bodies held in memory at once, over all connections: requests are served at most
    /// `max_inflight / max_body` at a time (at least one), and shed with 503 beyond.
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

impl Limits {
    /// Requests served at once under this listener's memory budget.
    pub fn concurrent_requests(&self) -> usize {
        (self.max_inflight / self.max_body.max(1)).max(1)
    }
}

/// The certificate (DER) a client presented in the TLS handshake, checked by the listener's
/// client verifier: put into every request's extensions of that connection.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<[u8]>);

/// Tells a running [`serve`] to stop accepting and lets it finish what is open.
#[derive(Clone)]
pub struct Shutdown(watch::Sender<bool>);

/// What a [`serve`] loop watches for the shutdown.
#[derive(Clone)]
pub struct ShutdownSignal(watch::Receiver<bool>);

impl Shutdown {
    pub fn new() -> (Shutdown, ShutdownSignal) {
        let (tx, rx) = watch::channel(false);
        (Shutdown(tx), ShutdownSignal(rx))
    }

    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl ShutdownSignal {
    /// A signal that never fires: for listeners that live as long as the process.
    pub fn never() -> ShutdownSignal {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        ShutdownSignal(rx)
    }

    /// Whether the signal has fired: for the sources on plain threads (a poll source, the Kafka
    /// consumer) that check it between requests instead of awaiting it.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    pub(crate) async fn fired(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Serves `router` (already layered, see [`layers::bounded`]) on a thread of its own (a
/// current-thread tokio runtime), until the process ends: for the peers-facing listeners of the
/// synchronous commands (`receive`, the demo's receiver). With `tls`, a connection whose handshake
/// fails or is too slow is dropped without an answer.
pub fn spawn(
    listener: std::net::TcpListener,
    name: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    router: Router,
) -> std::io::Result<()> {
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
                serve(
                    listener,
                    &name,
                    tls,
                    limits,
                    router,
                    ShutdownSignal::never(),
                )
                .await;
            })
        })?;
    Ok(())
}

/// Serves `router` on `listener` under `limits` until `shutdown` fires; then accepts no more,
/// asks every open connection to close after its current request, and returns once they have
/// (the caller bounds how long it waits).
pub async fn serve(
    listener: tokio::net::TcpListener,
    name: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    router: Router,
    mut shutdown: ShutdownSignal,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let max = limits.max_connections.max(1);
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let limits = Arc::new(limits);
    let mut failing = false;
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => return,
            },
            _ = shutdown.fired() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.fired() => break,
        };
        let tcp = match accepted {
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
        let (acceptor, router, limits, stop) = (
            acceptor.clone(),
            router.clone(),
            limits.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            match acceptor {
                None => connection(tcp, &limits, router, None, stop).await,
                Some(a) => {
                    let handshake = tokio::time::timeout(limits.header_timeout, a.accept(tcp));
                    if let Ok(Ok(stream)) = handshake.await {
                        let peer = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| PeerCertificate(Arc::from(c.as_ref())));
                        connection(stream, &limits, router, peer, stop).await;
                    }
                }
            }
        });
    }
    drop(listener);
    // Every connection holds a slot until it ends: all slots back means all connections closed.
    let _ = slots.acquire_many(max as u32).await;
}

async fn connection<S>(
    stream: S,
    limits: &Limits,
    router: Router,
    peer: Option<PeerCertificate>,
    mut stop: ShutdownSignal,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Requests being answered: a connection waiting for its answer (a push waiting for the
    // store) moves no bytes, and is not idle for that.
    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = busy.clone();
    let with_peer = tower::ServiceBuilder::new()
        .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            if let Some(p) = &peer {
                req.extensions_mut().insert(p.clone());
            }
            req
        })
        .map_future(move |answer| {
            let guard = InFlight::new(counted.clone());
            async move {
                let r = answer.await;
                drop(guard);
                r
            }
        })
        .service(router);
    let service = hyper_util::service::TowerToHyperService::new(with_peer);
    let (stream, activity) = idle::Watched::new(stream);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = activity.last() + limits.idle_timeout;
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep_until(deadline) => {
                let answering = busy.load(std::sync::atomic::Ordering::SeqCst) > 0;
                if answering {
                    activity.touch();
                } else if activity.last() + limits.idle_timeout <= tokio::time::Instant::now() {
                    return;
                }
            }
            _ = stop.fired(), if !stopping => {
                // Finish the request under way (its answer is sent), then close.
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Counts a request while its answer is being made; dropped with the answer's future (also
/// when the client goes away).
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    fn new(n: Arc<std::sync::atomic::AtomicUsize>) -> InFlight {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(n)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}
