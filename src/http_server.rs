//! A small HTTP/1.1 server on a thread of its own (a current-thread tokio runtime and hyper),
//! over TLS or not: the reference receiver (`pnp-gateway receive`) and the metrics endpoint.
//! The gateway itself stays synchronous; only these peers-facing listeners are async.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use std::future::Future;
use std::sync::Arc;

/// Serves every connection on `listener` with `handler`, until the process ends. With `tls`,
/// a connection whose handshake fails is dropped without an answer.
pub fn spawn<H, F>(
    listener: std::net::TcpListener,
    name: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: H,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let (acceptor, handler) = (acceptor.clone(), handler.clone());
                    tokio::spawn(async move {
                        match acceptor {
                            None => connection(tcp, handler).await,
                            Some(a) => {
                                if let Ok(stream) = a.accept(tcp).await {
                                    connection(stream, handler).await;
                                }
                            }
                        }
                    });
                }
            })
        })?;
    Ok(())
}

async fn connection<S, H, F>(stream: S, handler: H)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let response = handler(req);
        async move { Ok::<_, hyper::Error>(response.await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}
