//! What every rustls use of ours shares: the crypto provider (aws-lc-rs, the one reqwest
//! already brings) and reading PEM certificates and keys from files, with the file named in
//! each error.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Every certificate in a PEM file; errors read `{path}: {why}`.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The private key in a PEM file; errors read `{path}: {why}`.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether a listener with a client CA requires a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCerts {
    /// Every client presents one (the MLLP listener: senders are known by it).
    Required,
    /// A client may present one, and then it must chain to the CA (the API: token clients need
    /// none).
    Optional,
}

/// A listener's TLS: its certificate chain and key, and with `client_ca`, client certificates
/// checked against it. Errors name the file.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<(&Path, ClientCerts)>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = read_certs(cert)?;
    let key = read_key(key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some((ca, mode)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            );
            let v = match mode {
                ClientCerts::Required => v,
                ClientCerts::Optional => v.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
        }
    };
    let cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
}

/// The common name of a certificate's subject (DER), when it has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, c) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(
        c.subject()
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_string(),
    )
}

/// A PEM file's text; errors read `{path}: {why}`.
pub fn read_pem_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Why a TLS connection failed, in the words an operator acts on (untrusted certificate, name
/// mismatch, expired), when `err` or one of its causes is rustls's; `None` when it is not a TLS
/// failure. Walks the `source()` chain, looking inside `io::Error`s too (rustls's errors reach
/// reqwest and our MLLP client wrapped in one, and `io::Error::source` skips what it wraps).
pub fn failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(r));
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// One rustls error as `TLS: what is wrong (what to check)`. Names no host and no value.
pub fn describe(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let why = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature => {
                "untrusted certificate: the receiver's certificate is not issued by a trusted CA (check `ca_file`)"
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate name mismatch: the receiver's certificate is not for the host connected to"
            }
            C::Expired | C::ExpiredContext { .. } => {
                "expired certificate: the receiver's certificate has expired"
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "certificate not yet valid: the receiver's certificate starts later (check the clocks)"
            }
            C::Revoked => "revoked certificate",
            _ => "invalid certificate",
        },
        rustls::Error::AlertReceived(alert) => {
            return format!(
                "TLS: the receiver refused the handshake ({alert:?}; check the client identity)"
            );
        }
        other => return format!("TLS: {other}"),
    };
    format!("TLS: {why}")
}
