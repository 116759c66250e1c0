//! Accepting connections: a cap on how many are served at once, TLS when
//! configured, and the timeouts that keep a slow or silent client from
//! holding a connection.
//!
//! ```text
//! TcpListener ─► connection slot (connections_max; the rest wait in the backlog)
//!             ─► writes stalled ≤ write_timeout_secs (a client that never reads)
//!             ─► TLS handshake (rustls, ≤ header_read_timeout_secs), when configured
//!             ─► hyper HTTP/1: headers ≤ header_read_timeout_secs (also between
//!                kept-alive requests), body pauses ≤ body_read_timeout_secs,
//!                whole request ≤ request_timeout_secs
//!             ─► the router (guard, routes)
//! ```
//!
//! With TLS configured, only TLS is spoken: a plain-text request fails its
//! handshake and the connection is closed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::config::ServerConfig;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file is missing, unreadable or holds nothing usable.
    #[error("{path}: {problem}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the certificate and key.
    #[error("TLS certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A rustls server configuration from PEM files (certificate chain, key).
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let pem = |path: &Path, problem: String| TlsError::Pem {
        path: path.display().to_string(),
        problem,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem(cert, "no CERTIFICATE block".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until the future is dropped, under the
/// connection limits of `config`, over TLS when `tls` is given.
pub async fn serve_app(
    listener: TcpListener,
    app: Router,
    config: &ServerConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(config.connections_max));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let header_timeout = Duration::from_secs(config.header_read_timeout_secs);
    let write_timeout = Duration::from_secs(config.write_timeout_secs);
    let service = ServiceBuilder::new()
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
            config.body_read_timeout_secs,
        )))
        .service(app);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) if is_transient(&e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let _ = stream.set_nodelay(true);
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(write_timeout));
        let stream = Box::pin(stream);
        let service = service.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match acceptor {
                None => serve_connection(stream, service, header_timeout).await,
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(header_timeout, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    serve_connection(stream, service, header_timeout).await;
                }
            }
        });
    }
}

fn is_transient(error: &std::io::Error) -> bool {
    !matches!(
        error.kind(),
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::PermissionDenied
    )
}

async fn serve_connection<I, S>(io: I, service: S, header_timeout: Duration)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            axum::http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(1 << 20);
    // An error here is the client's (closed, timed out, malformed): the
    // connection ends and nothing else is affected.
    let _ = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .await;
}
