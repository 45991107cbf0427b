//! The MLLP client of the `hl7` destination: a connection kept open across messages (TLS or
//! not), one frame out and its ACK back, the ACK correlated by MSA-2 = MSH-10 and settled into
//! the outbox's outcome (`settle`). Apart from `hl7out.rs`, which builds the message, because the
//! transport's failure modes (idle closes, late ACKs, handshakes) are their own job.

use super::SendError;
use super::mllp;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
            may_have_arrived: false,
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
        // Written: from here on, a failure may leave the message with the receiver.
        let ack = reader.read_frame(stream).map_err(|e| {
            use std::io::ErrorKind as K;
            unsettled(match e.kind() {
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

/// A failed attempt to try again; the receiver did not get the message, or said so.
fn retry(m: String) -> SendError {
    SendError {
        retryable: true,
        message: m,
        retry_after: None,
        may_have_arrived: false,
    }
}

/// A failed attempt to try again after the message was written and no ACK settled it.
fn unsettled(m: String) -> SendError {
    SendError {
        may_have_arrived: true,
        ..retry(m)
    }
}

/// The outcome an ACK gives the message `control`.
pub fn settle(ack: &str, control: &str) -> Result<(), SendError> {
    let msa = ack
        .split(['\r', '\n'])
        .find(|s| s.starts_with("MSA|"))
        .ok_or_else(|| unsettled("the ACK has no MSA segment".into()))?;
    let f: Vec<&str> = msa.split('|').collect();
    let code = f.get(1).copied().unwrap_or("");
    let about = f.get(2).copied().unwrap_or("");
    if about != control {
        return Err(unsettled(format!(
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
            may_have_arrived: false,
        }),
        other => Err(unsettled(format!("unknown acknowledgment code `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ACK that settles nothing leaves the message perhaps with the receiver; one that
    /// refuses it does not.
    #[test]
    fn what_an_ack_says_of_where_the_message_is() {
        let ack = |code: &str, about: &str| {
            format!("MSH|^~\\&|R|F|S|F|20261201||ACK|A1|P|2.5.1\rMSA|{code}|{about}\r")
        };
        let may = |r: Result<(), SendError>| r.unwrap_err().may_have_arrived;
        assert!(settle(&ack("AA", "M1"), "M1").is_ok());
        assert!(!may(settle(&ack("AR", "M1"), "M1")));
        assert!(!may(settle(&ack("AE", "M1"), "M1")));
        assert!(may(settle(&ack("AA", "M0"), "M1")), "another message's ACK");
        assert!(may(settle(&ack("ZZ", "M1"), "M1")));
        assert!(may(settle("MSH|^~\\&|R\r", "M1")), "no MSA");
    }

    /// A receiver that reads the message and closes without an ACK may hold it; an address
    /// nobody listens on never got it.
    #[test]
    fn a_receiver_that_reads_and_closes_may_hold_the_message_one_never_reached_does_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            mllp::FrameReader::new(1 << 20).read_frame(&mut c).unwrap();
            // closed when dropped, with no ACK
        });
        let mut client = MllpClient::new(&addr, None, Duration::from_secs(5));
        let msg = "MSH|^~\\&|A||B||20260101||REF^I12^REF_I12|M1|P|2.5.1\r";
        let e = client.send(msg, "M1").unwrap_err();
        assert!(e.may_have_arrived, "{e:?}");
        server.join().unwrap();
        // Nobody listens there now: never sent.
        let e = client.send(msg, "M1").unwrap_err();
        assert!(!e.may_have_arrived, "{e:?}");
    }

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
}
