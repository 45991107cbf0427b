//! The reference receiver's TLS identity: a private CA and a certificate for localhost made
//! once and kept in a folder, so that a gateway trusting the CA keeps delivering across the
//! receiver's restarts.

use super::ReceiverError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The files of a receiver's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certs {
    /// The private CA's certificate: what the gateway's `ca_file` names.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Whether they were made now (rather than found and reused).
    pub made: bool,
}

/// The names a made certificate is for.
const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];
const CA_NAME: &str = "pnp-gateway demo CA";

/// A private CA and a certificate for `localhost` and 127.0.0.1 signed by it, written to
/// `dir` as `ca.pem`, `cert.pem` and `key.pem`, and the CA's key as `ca-key.pem` (the keys
/// readable by the owner only). The CA file is what the gateway's `ca_file` names. Always makes
/// new ones; [`reuse_or_make_certs`] keeps those a folder has.
pub fn make_certs(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf), ReceiverError> {
    let tls = |e: rcgen::Error| ReceiverError::Tls(e.to_string());
    let ca_key = rcgen::KeyPair::generate().map_err(tls)?;
    let ca = ca_params()?.self_signed(&ca_key).map_err(tls)?;
    crate::owner_only::create_dir_all(dir)
        .map_err(|e| ReceiverError::Io(dir.display().to_string(), e))?;
    write_pem(dir, "ca-key.pem", &ca_key.serialize_pem())?;
    let ca = write_pem(dir, "ca.pem", &ca.pem())?;
    let (cert, key) = issue_leaf(dir, ca_key)?;
    Ok((ca, cert, key))
}

/// The TLS identity in `dir` when it is there and good: `ca.pem`, `cert.pem` and `key.pem` that
/// belong together, the certificate signed by the CA, in date and for `localhost` and 127.0.0.1.
/// Otherwise, when the CA and its key (`ca-key.pem`) are good, a new certificate from the same CA
/// (so that a gateway trusting `ca.pem` still connects); otherwise a new CA and certificate.
/// `receive` without `--cert`/`--key` keeps its identity across restarts this way.
pub fn reuse_or_make_certs(dir: &Path) -> Result<Certs, ReceiverError> {
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    if check_certs(&ca, &cert, &key).is_ok() {
        return Ok(Certs {
            ca,
            cert,
            key,
            made: false,
        });
    }
    if ca.exists() {
        let reissued = crate::tls::read_pem_text(&dir.join("ca-key.pem"))
            .and_then(|pem| rcgen::KeyPair::from_pem(&pem).map_err(|e| e.to_string()))
            .map_err(ReceiverError::Tls)
            .and_then(|ca_key| issue_leaf(dir, ca_key))
            .and_then(|_| check_certs(&ca, &cert, &key));
        if reissued.is_ok() {
            return Ok(Certs {
                ca,
                cert,
                key,
                made: true,
            });
        }
    }
    let (ca, cert, key) = make_certs(dir)?;
    Ok(Certs {
        ca,
        cert,
        key,
        made: true,
    })
}

fn ca_params() -> Result<rcgen::CertificateParams, ReceiverError> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| ReceiverError::Tls(e.to_string()))?;
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, CA_NAME);
    Ok(p)
}

/// A new key and a certificate for [`NAMES`] signed by the CA of `ca_key`, written to `dir`.
fn issue_leaf(dir: &Path, ca_key: rcgen::KeyPair) -> Result<(PathBuf, PathBuf), ReceiverError> {
    let tls = |e: rcgen::Error| ReceiverError::Tls(e.to_string());
    let issuer = rcgen::Issuer::new(ca_params()?, ca_key);
    let leaf_params =
        rcgen::CertificateParams::new(NAMES.map(str::to_string).to_vec()).map_err(tls)?;
    let leaf_key = rcgen::KeyPair::generate().map_err(tls)?;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(tls)?;
    // The key first: a certificate never sits next to a key that is not its own for long, and
    // a crash in between leaves files that [`check_certs`] refuses.
    let key = write_pem(dir, "key.pem", &leaf_key.serialize_pem())?;
    let cert = write_pem(dir, "cert.pem", &leaf.pem())?;
    Ok((cert, key))
}

fn write_pem(dir: &Path, name: &str, text: &str) -> Result<PathBuf, ReceiverError> {
    let p = dir.join(name);
    crate::owner_only::write(&p, text.as_bytes())
        .map_err(|e| ReceiverError::Io(p.display().to_string(), e))?;
    Ok(p)
}

/// Whether `cert` is signed by `ca`, in date, for every one of [`NAMES`], and `key` is its key.
fn check_certs(ca: &Path, cert: &Path, key: &Path) -> Result<(), ReceiverError> {
    use rustls::client::danger::ServerCertVerifier;
    let bad = |e: String| ReceiverError::Tls(e);
    let mut roots = rustls::RootCertStore::empty();
    for c in crate::tls::read_certs(ca).map_err(bad)? {
        roots.add(c).map_err(|e| bad(e.to_string()))?;
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        crate::tls::provider(),
    )
    .build()
    .map_err(|e| bad(e.to_string()))?;
    let chain = crate::tls::read_certs(cert).map_err(bad)?;
    let Some((leaf, rest)) = chain.split_first() else {
        return Err(bad(format!("{}: no certificate", cert.display())));
    };
    let now = rustls::pki_types::UnixTime::now();
    for name in NAMES {
        let name = rustls::pki_types::ServerName::try_from(name).map_err(|e| bad(e.to_string()))?;
        verifier
            .verify_server_cert(leaf, rest, &name, &[], now)
            .map_err(|e| bad(e.to_string()))?;
    }
    let key = crate::tls::read_key(key).map_err(bad)?;
    rustls::sign::CertifiedKey::from_der(chain, key, &crate::tls::provider())
        .map(|_| ())
        .map_err(|e| bad(e.to_string()))
}
