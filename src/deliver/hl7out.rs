//! The `hl7` destination: a consented referral as an HL7 v2.5.1 REF^I12 (MSH, RF1, PRD for the
//! referring peer and the referred-to provider, PID with the consented fields only, NTE with the
//! 42 CFR 2.32 notice and the consent's scope), escaped, sent over MLLP, the ACK correlated by
//! MSA-2 = MSH-10. Built from the payload the profile produced, never from the incident.

use super::SendError;
use super::mllp;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Escapes a value for a field: the separators and the escape character itself.
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '\r' | '\n' => out.push_str("\\.br\\"),
            _ => out.push(c),
        }
    }
    out
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or("")
}

fn ymd(d: &str) -> String {
    d.chars().filter(char::is_ascii_digit).take(8).collect()
}

/// Where the message goes (MSH-5, MSH-6), and how it is acknowledged.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub application: String,
    pub facility: String,
    /// Enhanced acknowledgment mode: MSH-15 `AL` (a commit ACK always), MSH-16 `NE` (no
    /// application ACK); the commit ACK (CA, CR, CE) settles the message. In original mode
    /// both are empty and the application ACK (AA, AR, AE) settles it.
    pub enhanced: bool,
}

/// MSH-10: stable across retries (from the outbox's idempotency key), 20 characters.
pub fn control_id(idempotency_key: &str) -> String {
    idempotency_key.chars().take(20).collect()
}

/// The REF^I12 for one consented-referral payload; segments end with CR.
pub fn ref_i12(
    payload: &Value,
    idempotency_key: &str,
    to: &Receiver,
    now: chrono::DateTime<chrono::FixedOffset>,
) -> String {
    let e = escape;
    let p = &payload["person"];
    let mut segs = Vec::new();
    segs.push(format!(
        "MSH|^~\\&|PNP-GATEWAY|WV-PNP|{}|{}|{}||REF^I12^REF_I12|{}|P|2.5.1{}",
        e(&to.application),
        e(&to.facility),
        now.format("%Y%m%d%H%M%S%z"),
        control_id(idempotency_key),
        if to.enhanced { "|||AL|NE" } else { "" }
    ));
    let service = s(payload, "/referral/service");
    segs.push(format!(
        "RF1|A^Active^HL70283|R^Routine^HL70280|{}^{}^L|||{}|{}",
        e(service),
        e(&service.replace('_', " ")),
        e(s(payload, "/referral/engagement")),
        ymd(s(payload, "/referral/engaged_on"))
    ));
    segs.push(format!(
        "PRD|RP^Referring Provider^HL70286|{}^Peer Recovery Support Specialist",
        e(s(payload, "/referral/prss"))
    ));
    segs.push(format!(
        "PRD|RT^Referred to Provider^HL70286|{}",
        e(s(payload, "/consent/recipient"))
    ));
    // PID-3 is required: the referral's own id comes first (it identifies the referral, not the
    // person), then the identifiers the consent covers.
    let referral_id = format!("{}^^^PNP-GATEWAY^RI", e(s(payload, "/referral/engagement")));
    let ids: Vec<String> = std::iter::once(referral_id)
        .chain(
            p.pointer("/id/ssn")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|v| format!("{}^^^SSA^SS", e(v))),
        )
        .chain(
            p.pointer("/id/mrn")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|v| format!("{}^^^^MR", e(v))),
        )
        .collect();
    let name = [
        s(p, "/name/last"),
        s(p, "/name/first"),
        s(p, "/name/middle"),
        s(p, "/name/suffix"),
    ]
    .map(e)
    .join("^");
    let sex = match s(p, "/sex") {
        "male" => "M",
        "female" => "F",
        "other" => "O",
        "" => "",
        _ => "U",
    };
    let addr = format!(
        "{}^^{}^{}^{}",
        e(s(p, "/address/street")),
        e(s(p, "/address/city")),
        e(s(p, "/address/state")),
        e(s(p, "/address/zip"))
    );
    let phone = p
        .pointer("/phones/0")
        .and_then(Value::as_str)
        .map(escape)
        .unwrap_or_default();
    let trim = |f: String| f.trim_end_matches('^').to_string();
    segs.push(format!(
        "PID|1||{}||{}||{}|{}|||{}||{}",
        ids.join("~"),
        trim(name),
        ymd(s(p, "/dob")),
        sex,
        trim(addr),
        phone
    ));
    segs.push(format!("NTE|1||{}", e(s(payload, "/notice"))));
    let classes: Vec<&str> = payload
        .pointer("/consent/information")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    segs.push(format!(
        "NTE|2||{}",
        e(&format!(
            "Consent {} for {}; covers {}; expires {}",
            s(payload, "/consent/id"),
            s(payload, "/consent/purpose"),
            classes.join(", "),
            s(payload, "/consent/expires_on")
        ))
    ));
    let mut m = segs.join("\r");
    m.push('\r');
    m
}

/// TLS for MLLP: the server's name to check its certificate against, the trust roots (the
/// system's, or a private CA), and an optional client identity.
#[derive(Clone)]
pub struct MllpTls {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl MllpTls {
    pub fn new(
        server_name: &str,
        ca_file: Option<&Path>,
        identity_file: Option<&Path>,
    ) -> Result<MllpTls, String> {
        use rustls::pki_types::ServerName;
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(ca) => {
                for c in crate::tls::read_certs(ca).map_err(|e| format!("the CA file {e}"))? {
                    roots
                        .add(c)
                        .map_err(|e| format!("the CA file {}: {e}", ca.display()))?;
                }
            }
            None => {
                // The system's trust store, as the HTTPS destinations use.
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
        }
        let b = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match identity_file {
            Some(id) => {
                let identity = |e| format!("the client identity {e}");
                let certs = crate::tls::read_certs(id).map_err(identity)?;
                let key = crate::tls::read_key(id).map_err(identity)?;
                b.with_client_auth_cert(certs, key)
                    .map_err(|e| format!("the client identity {}: {e}", id.display()))?
            }
            None => b.with_no_client_auth(),
        };
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|_| format!("`{server_name}` is not a server name or IP address"))?;
        Ok(MllpTls {
            config: Arc::new(config),
            server_name,
        })
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// An MLLP connection kept open across messages (a receiver answers each frame with its ACK
/// before the next is sent), reopened after any error so that a late ACK is never taken for the
/// next message's.
pub struct MllpClient {
    addr: String,
    tls: Option<MllpTls>,
    timeout: Duration,
    conn: Option<(Box<dyn Stream>, mllp::FrameReader)>,
}

impl MllpClient {
    pub fn new(addr: &str, tls: Option<MllpTls>, timeout: Duration) -> MllpClient {
        MllpClient {
            addr: addr.to_string(),
            tls,
            timeout,
            conn: None,
        }
    }

    fn connect(&self) -> Result<Box<dyn Stream>, SendError> {
        let sock: std::net::SocketAddr = self.addr.parse().map_err(|_| SendError {
            retryable: false,
            message: format!("`{}` is not host:port", self.addr),
            retry_after: None,
        })?;
        let tcp = TcpStream::connect_timeout(&sock, self.timeout)
            .map_err(|e| retry(format!("cannot connect: {}", e.kind())))?;
        tcp.set_read_timeout(Some(self.timeout)).ok();
        tcp.set_write_timeout(Some(self.timeout)).ok();
        tcp.set_nodelay(true).ok();
        Ok(match &self.tls {
            None => Box::new(tcp),
            Some(t) => {
                let conn = rustls::ClientConnection::new(t.config.clone(), t.server_name.clone())
                    .map_err(|e| retry(format!("TLS: {e}")))?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                while s.conn.is_handshaking() {
                    s.conn.complete_io(&mut s.sock).map_err(|e| {
                        retry(
                            crate::tls::failure(&e)
                                .unwrap_or_else(|| format!("TLS handshake: {e}")),
                        )
                    })?;
                }
                Box::new(s)
            }
        })
    }

    /// Sends one message and reads its ACK: AA/CA done, AR/CR and no or a mismatched ACK
    /// retried, AE/CE dead-lettered.
    pub fn send(&mut self, message: &str, control: &str) -> Result<(), SendError> {
        let reused = self.conn.is_some();
        let first = self.exchange(message, control);
        let Err((e, closed)) = first else {
            return Ok(());
        };
        self.conn = None;
        if !(reused && closed) {
            return Err(e);
        }
        // The receiver closed the connection while it was idle: once more, on a fresh one.
        self.exchange(message, control).map_err(|(e, _)| {
            self.conn = None;
            e
        })
    }

    /// One message and its ACK; on failure, whether the connection was found closed (and the
    /// message may simply be sent again on a new one).
    fn exchange(&mut self, message: &str, control: &str) -> Result<(), (SendError, bool)> {
        if self.conn.is_none() {
            let stream = self.connect().map_err(|e| (e, false))?;
            self.conn = Some((stream, mllp::FrameReader::new(1 << 20)));
        }
        let Some((stream, reader)) = self.conn.as_mut() else {
            return Err((retry("no connection".into()), false));
        };
        let closed = |e: &std::io::Error| {
            use std::io::ErrorKind as K;
            matches!(
                e.kind(),
                K::BrokenPipe
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::NotConnected
                    | K::UnexpectedEof
            )
        };
        stream
            .write_all(&mllp::frame(message.as_bytes()))
            .and_then(|_| stream.flush())
            .map_err(|e| (retry(format!("cannot send: {}", e.kind())), closed(&e)))?;
        let ack = reader
            .read_frame(stream)
            .map_err(|e| (retry(format!("no ACK: {e}")), closed(&e)))?;
        settle(&String::from_utf8_lossy(&ack), control).map_err(|e| (e, false))
    }
}

fn retry(m: String) -> SendError {
    SendError {
        retryable: true,
        message: m,
        retry_after: None,
    }
}

/// The outcome an ACK gives the message `control`.
pub fn settle(ack: &str, control: &str) -> Result<(), SendError> {
    let msa = ack
        .split(['\r', '\n'])
        .find(|s| s.starts_with("MSA|"))
        .ok_or_else(|| retry("the ACK has no MSA segment".into()))?;
    let f: Vec<&str> = msa.split('|').collect();
    let code = f.get(1).copied().unwrap_or("");
    let about = f.get(2).copied().unwrap_or("");
    if about != control {
        return Err(retry(format!(
            "the ACK answers message `{about}`, not `{control}`"
        )));
    }
    match code {
        "AA" | "CA" => Ok(()),
        "AR" | "CR" => Err(retry(format!("{code}: rejected for now by the receiver"))),
        "AE" | "CE" => Err(SendError {
            retryable: false,
            message: format!("{code}: the receiver found an error in the message"),
            retry_after: None,
        }),
        other => Err(retry(format!("unknown acknowledgment code `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver that ACKs one message per connection, then closes it (an idle timeout).
    #[test]
    fn a_connection_closed_by_the_receiver_is_reopened_without_a_failure() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut c, _) = l.accept().unwrap();
                let mut r = mllp::FrameReader::new(1 << 20);
                let f = r.read_frame(&mut c).unwrap();
                let text = String::from_utf8_lossy(&f).into_owned();
                let control = text.split('|').nth(9).unwrap_or("").to_string();
                let ack = format!("MSH|^~\\&|R||S||20260101||ACK|1|P|2.5.1\rMSA|AA|{control}\r");
                c.write_all(&mllp::frame(ack.as_bytes())).unwrap();
                // closed when dropped
            }
        });
        let mut client = MllpClient::new(&addr, None, Duration::from_secs(5));
        let msg = |id: &str| format!("MSH|^~\\&|A||B||20260101||REF^I12^REF_I12|{id}|P|2.5.1\r");
        assert_eq!(client.send(&msg("M1"), "M1"), Ok(()));
        std::thread::sleep(Duration::from_millis(100)); // the receiver has closed it by now
        assert_eq!(client.send(&msg("M2"), "M2"), Ok(()));
        server.join().unwrap();
    }

    #[test]
    fn escaping() {
        assert_eq!(escape(r"a|b^c&d~e\f"), r"a\F\b\S\c\T\d\R\e\E\f");
        let back = crate::formats::hl7::unescape(
            &escape("x|y^z\\w&é~"),
            &crate::formats::hl7::Seps::default(),
        );
        assert_eq!(back, "x|y^z\\w&é~");
    }
}
