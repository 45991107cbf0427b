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
    /// How values that are not ASCII travel.
    pub charset: Charset,
}

/// How a message carries characters outside ASCII. HL7 reads a message whose MSH-18 is empty
/// as ASCII, so raw UTF-8 there is a message the receiver cannot decode (python-hl7's MLLP
/// server drops the connection): either declare it, or keep the message ASCII.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub enum Charset {
    /// Raw UTF-8, declared in MSH-18 as `UNICODE UTF-8` (HL7 table 0211) whenever the message
    /// holds a character outside ASCII; an all-ASCII message leaves MSH-18 empty as before, for
    /// receivers that know no MSH-18.
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// An all-ASCII message, MSH-18 empty: each character outside ASCII becomes HL7's
    /// hexadecimal-data escape `\Xhh..\` of its UTF-8 bytes, for receivers that take no MSH-18.
    #[serde(rename = "escape")]
    Escape,
}

/// MSH-18 for a UTF-8 message.
pub const UTF8: &str = "UNICODE UTF-8";

/// Each character outside ASCII as `\Xhh..\` (its UTF-8 bytes, uppercase hex).
pub fn escape_non_ascii(m: &str) -> String {
    let mut out = String::with_capacity(m.len());
    for c in m.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut b = [0u8; 4];
            out.push_str("\\X");
            for byte in c.encode_utf8(&mut b).bytes() {
                out.push_str(&format!("{byte:02X}"));
            }
            out.push('\\');
        }
    }
    out
}

/// MSH-10: stable across retries (from the outbox's idempotency key), 20 characters.
pub fn control_id(idempotency_key: &str) -> String {
    idempotency_key.chars().take(20).collect()
}

/// The message: MSH (with MSH-18 and the escapes `to.charset` asks for), then `body`'s
/// segments; each segment ends with CR. `event` is MSH-9 (`REF^I12^REF_I12`).
pub fn message(
    to: &Receiver,
    now: chrono::DateTime<chrono::FixedOffset>,
    control: &str,
    event: &str,
    body: &[String],
) -> String {
    let mut rest = body.join("\r");
    rest.push('\r');
    // MSH-18 names the character set only when there is one to name: an ASCII message reads
    // the same either way, and receivers that know no MSH-18 keep taking it.
    let (rest, charset) = match to.charset {
        _ if rest.is_ascii() && to.application.is_ascii() && to.facility.is_ascii() => (rest, ""),
        Charset::Utf8 => (rest, UTF8),
        Charset::Escape => (escape_non_ascii(&rest), ""),
    };
    let mut tail = String::new();
    if to.enhanced || !charset.is_empty() {
        tail.push_str(if to.enhanced { "|||AL|NE" } else { "||||" });
    }
    if !charset.is_empty() {
        tail.push_str("||");
        tail.push_str(charset);
    }
    let msh = format!(
        "MSH|^~\\&|PNP-GATEWAY|WV-PNP|{}|{}|{}||{event}|{control}|P|2.5.1{tail}\r",
        escape(&to.application),
        escape(&to.facility),
        now.format("%Y%m%d%H%M%S%z"),
    );
    let msh = match to.charset {
        Charset::Escape => escape_non_ascii(&msh),
        Charset::Utf8 => msh,
    };
    msh + &rest
}

/// A value of the payload's incident as text for the referral's details, if the payload
/// carries it (the profile left out what the consent does not cover).
fn detail(payload: &Value, path: &str) -> Option<String> {
    match payload.pointer(path)? {
        Value::String(v) if !v.trim().is_empty() => Some(v.clone()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.into()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A code of ours (`substance_use_treatment`) as words (`substance use treatment`).
fn words(code: &str) -> String {
    code.replace('_', " ")
}

/// The REF^I12 for one consented-referral payload; segments end with CR.
///
/// RF1 carries the referral: status active, priority routine, the service requested as its
/// type (RF1-3), the engagement as the originating referral (RF1-6), the day of engagement as
/// its effective date (RF1-7), and the incident's category as its reason (RF1-10). The NTEs
/// after the 42 CFR 2.32 notice and the consent's scope carry the details the webhook payload
/// carries (NTE-4 `1R`, primary reason: category, service, naloxone, the time the call was
/// received) and the narrative (NTE-4 `RE`) when the payload has one, which it has only when
/// the consent covers it.
pub fn ref_i12(
    payload: &Value,
    idempotency_key: &str,
    to: &Receiver,
    now: chrono::DateTime<chrono::FixedOffset>,
) -> String {
    let e = escape;
    let p = &payload["person"];
    let mut segs = Vec::new();
    let service = s(payload, "/referral/service");
    let category = detail(payload, "/incident/category").unwrap_or_default();
    let reason = if category.is_empty() {
        String::new()
    } else {
        format!("{}^{}^L", e(&category), e(&words(&category)))
    };
    segs.push(format!(
        "RF1|A^Active^HL70283|R^Routine^HL70280|{}^{}^L|||{}|{}|||{reason}",
        e(service),
        e(&words(service)),
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
    let details: Vec<String> = [
        (
            "Incident category",
            detail(payload, "/incident/category").map(|c| words(&c)),
        ),
        (
            "Service requested",
            Some(words(service)).filter(|v| !v.is_empty()),
        ),
        (
            "Naloxone administered",
            detail(payload, "/incident/naloxone_administered"),
        ),
        ("Call received", detail(payload, "/incident/times/received")),
    ]
    .into_iter()
    .filter_map(|(label, v)| Some(format!("{label}: {}", v?)))
    .collect();
    let mut n = 3;
    if !details.is_empty() {
        segs.push(format!(
            "NTE|{n}||{}|1R^Primary Reason^HL70364",
            e(&details.join("; "))
        ));
        n += 1;
    }
    if let Some(narrative) = detail(payload, "/incident/narrative") {
        segs.push(format!(
            "NTE|{n}||{}|RE^Remark^HL70364",
            e(&narrative.replace("\r\n", "\n"))
        ));
    }
    message(
        to,
        now,
        &control_id(idempotency_key),
        "REF^I12^REF_I12",
        &segs,
    )
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
    conn: Option<Conn>,
}

/// An open connection: the stream (TLS or not), what was read past the last frame, and the
/// socket itself, to look at before a message is written.
struct Conn {
    stream: Box<dyn Stream>,
    reader: mllp::FrameReader,
    tcp: TcpStream,
}

impl Conn {
    /// Whether the connection is still open and quiet: nothing came since the last ACK, not
    /// even the receiver's close. A connection the receiver closed while it was idle (or that
    /// holds anything unasked for) is reopened before the message is written, so that a close
    /// after the message was written is always the receiver's answer to it.
    fn quiet(&self) -> bool {
        if self.tcp.set_nonblocking(true).is_err() {
            return false;
        }
        let r = self.tcp.peek(&mut [0u8; 1]);
        let back = self.tcp.set_nonblocking(false);
        back.is_ok() && matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
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

    fn connect(&self) -> Result<Conn, SendError> {
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
        let socket = tcp
            .try_clone()
            .map_err(|e| retry(format!("cannot connect: {}", e.kind())))?;
        let stream: Box<dyn Stream> = match &self.tls {
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
        };
        Ok(Conn {
            stream,
            reader: mllp::FrameReader::new(1 << 20),
            tcp: socket,
        })
    }

    /// Sends one message and reads its ACK: AA/CA done, AR/CR and no or a mismatched ACK
    /// retried, AE/CE dead-lettered. A kept connection the receiver closed while idle is
    /// reopened first; once the message is written, a receiver that closes the connection
    /// without an ACK has answered it: a failed attempt, counted like any other (sending it
    /// again at once, uncounted, would let a receiver that drops every message get each one
    /// twice per attempt).
    pub fn send(&mut self, message: &str, control: &str) -> Result<(), SendError> {
        if self.conn.as_ref().is_some_and(|c| !c.quiet()) {
            self.conn = None;
        }
        let r = self.exchange(message, control);
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    /// One message and its ACK.
    fn exchange(&mut self, message: &str, control: &str) -> Result<(), SendError> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let timeout = self.timeout.as_millis();
        let Some(Conn { stream, reader, .. }) = self.conn.as_mut() else {
            return Err(retry("no connection".into()));
        };
        stream
            .write_all(&mllp::frame(message.as_bytes()))
            .and_then(|_| stream.flush())
            .map_err(|e| retry(format!("cannot send: {}", e.kind())))?;
        let ack = reader.read_frame(stream).map_err(|e| {
            use std::io::ErrorKind as K;
            retry(match e.kind() {
                K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                    "no ACK: the receiver closed the connection without one".into()
                }
                K::WouldBlock | K::TimedOut => {
                    format!("no ACK within {timeout} ms")
                }
                _ => format!("no ACK: {e}"),
            })
        })?;
        settle(&String::from_utf8_lossy(&ack), control)
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

    /// MSH-15/16 (enhanced mode) and MSH-18 land in their own fields, and MSH-18 is set only
    /// for a message that is not ASCII; `escape` keeps the message ASCII instead.
    #[test]
    fn msh18_only_when_a_value_is_not_ascii() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-21T10:00:00-05:00").unwrap();
        let msh = |enhanced, charset, body: &str| {
            let to = Receiver {
                application: "INTAKE".into(),
                facility: String::new(),
                enhanced,
                charset,
            };
            let m = message(&to, now, "C1", "REF^I12^REF_I12", &[body.to_string()]);
            let fields: Vec<String> = m
                .split('\r')
                .next()
                .unwrap()
                .split('|')
                .map(String::from)
                .collect();
            (m, fields)
        };
        let (_, f) = msh(false, Charset::Utf8, "PID|1||X||DOE^JANE");
        assert_eq!(f.len(), 12, "{f:?}");
        let (_, f) = msh(false, Charset::Utf8, "PID|1||X||NÚÑEZ^JOSÉ");
        assert_eq!((f.len(), f[17].as_str()), (18, UTF8), "{f:?}");
        let (_, f) = msh(true, Charset::Utf8, "PID|1||X||NÚÑEZ^JOSÉ");
        assert_eq!(
            (f[14].as_str(), f[15].as_str(), f[17].as_str()),
            ("AL", "NE", UTF8)
        );
        let (m, f) = msh(true, Charset::Escape, "PID|1||X||NÚÑEZ^JOSÉ");
        assert_eq!(f.len(), 16, "{f:?}");
        assert!(
            m.ends_with("PID|1||X||N\\XC39A\\\\XC391\\EZ^JOS\\XC389\\\r"),
            "{m}"
        );
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
