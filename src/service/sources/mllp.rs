//! The MLLP listener: HL7 v2 messages over TCP (or TLS), each ACKed only after it is committed.
//!
//! Per message: the MSH is read for the control id (MSH-10), the sender (MSH-3 and MSH-4, or the
//! client certificate's name under mutual TLS), the version and the accept-acknowledgement type
//! (MSH-15: present means enhanced mode). The message goes to the engine as a push keyed by the
//! sender, the control id and a digest of the message without its MSH-7 time, so a message
//! resent (a lost ACK; some senders stamp a new MSH-7) is ACKed again and stored once, and
//! another message under a control id already used (a sender's counter restarted) is stored too.
//! The answer: original mode AA (stored), AE (every record of it rejected, quarantined: an ERR
//! segment names the field and the kind), AR (the store cannot take it now: resend); enhanced
//! mode CA, CE, CR likewise. Frames are bounded in size (`max_frame_bytes`) and in the time they
//! take (`frame_timeout_secs`), the bytes of unfinished frames over all connections
//! (`max_inflight_bytes`), connections counted and closed when idle.

use super::Context;
use crate::config::source::SourceSpec;
use crate::deliver::mllp::{FrameReader, frame};
use crate::service::ServiceError;
use crate::service::engine::Command;
use crate::service::push::{PushAnswer, PushError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::TrySendError;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Binds the listener and serves it on `runtime`; returns the bound address.
pub(super) fn start(
    runtime: &tokio::runtime::Runtime,
    ctx: Context,
    spec: &SourceSpec,
) -> Result<SocketAddr, ServiceError> {
    let SourceSpec::Mllp {
        listen,
        tls_cert,
        tls_key,
        client_ca,
        max_frame_bytes,
        max_connections,
        idle_timeout_secs,
        frame_timeout_secs,
        max_inflight_bytes,
        referral_answers,
    } = spec
    else {
        unreachable!("an MLLP spec");
    };
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| ServiceError::Source(format!("{listen} is not an address")))?;
    let io = |what: String| move |source| ServiceError::Io { what, source };
    let listener =
        std::net::TcpListener::bind(addr).map_err(io(format!("cannot listen on {addr}")))?;
    listener
        .set_nonblocking(true)
        .map_err(io(addr.to_string()))?;
    let bound = listener.local_addr().map_err(io(addr.to_string()))?;
    let tls = match (tls_cert, tls_key) {
        (Some(c), Some(k)) => Some(tls_config(c.as_ref(), k.as_ref(), client_ca.as_deref())?),
        _ => None,
    };
    let limits = Limits {
        answers: *referral_answers,
        max_frame: *max_frame_bytes,
        max_connections: *max_connections,
        idle: Duration::from_secs(*idle_timeout_secs),
        frame_timeout: Duration::from_secs(*frame_timeout_secs),
        max_inflight: *max_inflight_bytes,
    };
    let pipeline = ctx.gw.pipelines[ctx.pipeline].id.clone();
    ctx.health.source(&pipeline, |s| {
        s.kind = "mllp";
        s.state = "listening";
        s.connections = Some(0);
    });
    tracing::info!(pipeline = %pipeline, addr = %bound, tls = tls.is_some(), "MLLP listener");
    runtime.spawn(async move {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => accept_loop(l, ctx, tls, limits).await,
            Err(e) => tracing::error!(error = %e, "cannot serve MLLP"),
        }
    });
    Ok(bound)
}

#[derive(Clone, Copy)]
struct Limits {
    /// `referral_answers`: providers' RRI and ACK messages are taken (service::rri).
    answers: bool,
    max_frame: usize,
    max_connections: usize,
    idle: Duration,
    frame_timeout: Duration,
    max_inflight: usize,
}

/// The bytes of unfinished frames a connection holds, counted in the listener's budget
/// (`max_inflight_bytes`) and given back when it closes.
struct Held {
    budget: Arc<AtomicU64>,
    mine: u64,
}

impl Held {
    /// Counts `now` bytes held instead of the last count; false (and nothing counted) when the
    /// budget cannot take the difference.
    fn set(&mut self, now: usize, max: usize) -> bool {
        let now = now as u64;
        if now > self.mine {
            let more = now - self.mine;
            let before = self.budget.fetch_add(more, Ordering::SeqCst);
            if before + more > max as u64 {
                self.budget.fetch_sub(more, Ordering::SeqCst);
                return false;
            }
        } else {
            self.budget.fetch_sub(self.mine - now, Ordering::SeqCst);
        }
        self.mine = now;
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.mine, Ordering::SeqCst);
    }
}

/// Mutual TLS here is required when `client_ca` is given: a sender is known by its certificate.
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<&str>,
) -> Result<tokio_rustls::TlsAcceptor, ServiceError> {
    let ca = client_ca.map(|c| (std::path::Path::new(c), crate::tls::ClientCerts::Required));
    let cfg = crate::tls::server_config(cert, key, ca).map_err(ServiceError::Tls)?;
    Ok(tokio_rustls::TlsAcceptor::from(cfg))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    ctx: Context,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let open = Arc::new(AtomicU64::new(0));
    let budget = Arc::new(AtomicU64::new(0));
    let pipeline = ctx.gw.pipelines[ctx.pipeline].id.clone();
    let mut stop = ctx.stop.clone();
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => return },
            _ = stop.fired() => return,
        };
        let (tcp, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(pipeline = %pipeline, error = %e, "MLLP: cannot accept; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.fired() => return,
        };
        let (ctx, tls, open) = (ctx.clone(), tls.clone(), open.clone());
        let held = Held {
            budget: budget.clone(),
            mine: 0,
        };
        tokio::spawn(async move {
            let _slot = slot;
            let n = open.fetch_add(1, Ordering::SeqCst) + 1;
            let p = ctx.gw.pipelines[ctx.pipeline].id.clone();
            ctx.health.source(&p, |s| s.connections = Some(n));
            match tls {
                None => session(tcp, None, &ctx, limits, held).await,
                Some(a) => {
                    if let Ok(Ok(s)) = tokio::time::timeout(limits.idle, a.accept(tcp)).await {
                        let name = s
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|c| crate::tls::common_name(c.as_ref()));
                        session(s, name, &ctx, limits, held).await;
                    }
                }
            }
            let n = open.fetch_sub(1, Ordering::SeqCst) - 1;
            ctx.health.source(&p, |s| s.connections = Some(n));
            tracing::debug!(peer = %peer, "MLLP connection closed");
        });
    }
}

/// One connection: frames in, one ACK out per frame, in order.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    cert_name: Option<String>,
    ctx: &Context,
    limits: Limits,
    mut held: Held,
) {
    let mut frames = FrameReader::new(limits.max_frame);
    let mut buf = vec![0u8; 64 * 1024];
    // When the unfinished frame's first byte came.
    let mut began: Option<tokio::time::Instant> = None;
    let refuse = |kind: &'static str, why: &'static str| {
        frame(build_ack(&Msh::default(), Code::Reject, Some(("", kind, why))).as_bytes())
    };
    loop {
        let taken = frames.take_frame();
        // What the connection holds now counts in the listener's budget; a frame taken is
        // handled with its bytes counted no more.
        held.set(frames.buffered(), limits.max_inflight);
        let msg = match taken {
            Ok(Some(m)) => {
                began = None;
                m
            }
            Ok(None) => {
                let now = tokio::time::Instant::now();
                let wait = match frames.buffered() {
                    0 => {
                        began = None;
                        limits.idle
                    }
                    _ => {
                        let deadline = *began.get_or_insert(now) + limits.frame_timeout;
                        limits.idle.min(deadline.saturating_duration_since(now))
                    }
                };
                let mut stop = ctx.stop.clone();
                let read = tokio::select! {
                    r = tokio::time::timeout(wait, stream.read(&mut buf)) => r,
                    _ = stop.fired() => return,
                };
                match read {
                    Ok(Ok(n)) if n > 0 => {
                        if !held.set(frames.buffered() + n, limits.max_inflight) {
                            let busy = refuse(
                                "busy",
                                "the listener holds as many unfinished messages as it takes; resend",
                            );
                            let _ = stream.write_all(&busy).await;
                            return;
                        }
                        frames.push(&buf[..n]);
                        continue;
                    }
                    Err(_)
                        if began.is_some_and(|b| {
                            b + limits.frame_timeout <= tokio::time::Instant::now()
                        }) =>
                    {
                        let late = refuse(
                            "frame_timeout",
                            "the message did not arrive in time; resend",
                        );
                        let _ = stream.write_all(&late).await;
                        return;
                    }
                    _ => return, // closed, failed or idle
                }
            }
            Err(_) => {
                // Over the frame limit: refused, and the connection closed (the rest of the
                // frame would be read as noise).
                let large = refuse(
                    "frame_too_large",
                    "the message is larger than this listener takes",
                );
                let _ = stream.write_all(&large).await;
                return;
            }
        };
        let ack = match crate::formats::hl7_reply::message_type(&msg) {
            Some(t) if crate::formats::hl7_reply::is_reply(&t) => {
                crate::service::rri::over_mllp(&msg, cert_name.as_deref(), limits.answers, ctx)
                    .await
            }
            _ => handle(&msg, cert_name.as_deref(), ctx).await,
        };
        if stream.write_all(&frame(ack.as_bytes())).await.is_err() || stream.flush().await.is_err()
        {
            return;
        }
    }
}

/// What the ACK needs from the message's MSH.
#[derive(Debug, Default, Clone)]
pub(crate) struct Msh {
    pub(crate) control_id: String,
    sending_app: String,
    sending_facility: String,
    receiving_app: String,
    receiving_facility: String,
    trigger: String,
    version: String,
    processing_id: String,
    /// MSH-15 present: enhanced mode (commit acknowledgements).
    enhanced: bool,
}

pub(crate) fn parse_msh(msg: &[u8]) -> Option<Msh> {
    // Read lossily: a message in another encoding (ISO 8859-1, MSH-18) still has an ASCII MSH,
    // and is then rejected by the parser as not UTF-8 (AE, quarantined) instead of refused
    // here for want of a control id (AR, which a sender resends for ever).
    let text = String::from_utf8_lossy(msg);
    // A byte-order mark before the MSH is the sender's editor's, not the message's.
    let line = text
        .split(['\r', '\n'])
        .map(|l| l.trim_start_matches('\u{feff}'))
        .find(|l| l.starts_with("MSH"))?;
    let sep = line.chars().nth(3)?;
    let f: Vec<&str> = line.split(sep).collect();
    // f[0] = "MSH", f[1] = encoding characters (MSH-2), so MSH-n = f[n - 1].
    let get = |n: usize| f.get(n - 1).copied().unwrap_or_default().to_string();
    let comp = line.chars().nth(4).unwrap_or('^');
    let msh9 = get(9);
    Some(Msh {
        control_id: get(10),
        sending_app: get(3),
        sending_facility: get(4),
        receiving_app: get(5),
        receiving_facility: get(6),
        trigger: msh9.split(comp).nth(1).unwrap_or_default().to_string(),
        version: get(12),
        processing_id: get(11),
        enhanced: !get(15).is_empty(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    Accept,
    Error,
    Reject,
}

/// An ACK in the message's own mode (AA/AE/AR, or CA/CE/CR in enhanced mode); `err` =
/// (field, kind, reason) for an ERR segment. Nothing of the message but its MSH routing fields
/// and control id is echoed.
pub(crate) fn build_ack(msh: &Msh, code: Code, err: Option<(&str, &str, &str)>) -> String {
    let code = match (msh.enhanced, code) {
        (false, Code::Accept) => "AA",
        (false, Code::Error) => "AE",
        (false, Code::Reject) => "AR",
        (true, Code::Accept) => "CA",
        (true, Code::Error) => "CE",
        (true, Code::Reject) => "CR",
    };
    let now = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let version = if msh.version.is_empty() {
        "2.5.1"
    } else {
        &msh.version
    };
    let processing = if msh.processing_id.is_empty() {
        "P"
    } else {
        &msh.processing_id
    };
    let f = ack_field;
    let mut ack = format!(
        "MSH|^~\\&|{}|{}|{}|{}|{now}||ACK^{}^ACK|ACK{now}{}|{}|{}\rMSA|{code}|{}\r",
        f(&msh.receiving_app),
        f(&msh.receiving_facility),
        f(&msh.sending_app),
        f(&msh.sending_facility),
        f(&msh.trigger),
        f(&msh.control_id.chars().take(10).collect::<String>()),
        f(processing),
        f(version),
        f(&msh.control_id),
    );
    if let Some((field, kind, reason)) = err {
        // ERR-3 HL7 error code 207 (application internal error); ERR-4 severity E; ERR-8 the
        // user message: the field and our kind and reason, never a value.
        let text = if field.is_empty() {
            format!("{kind}: {reason}")
        } else {
            format!("field {field}: {kind}: {reason}")
        };
        ack += &format!(
            "ERR|||207^Application internal error^HL70357|E||||{}\r",
            escape(&text)
        );
    }
    ack
}

/// HL7 escapes for text put into a field.
/// A value of the message copied into a field of the ACK, which is written with the standard
/// separators: a `|` (a sender with other separators may have one in a field) is escaped, and a
/// control character (a stray frame byte, a line end) becomes a space, so the ACK keeps its
/// structure. Components (`^`) stay, as the sender wrote them.
fn ack_field(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c == '|' || c.is_control()) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '|' => o += "\\F\\",
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    std::borrow::Cow::Owned(o)
}

pub(crate) fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o += "\\E\\",
            '|' => o += "\\F\\",
            '^' => o += "\\S\\",
            '&' => o += "\\T\\",
            '~' => o += "\\R\\",
            '\r' | '\n' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// The push key of a message: its control id, then 64 bits of a SHA-256 of the message with
/// MSH-7 (the time it was sent) blanked and its segments however they end, so that only a
/// resend shares it. Bytes before the MSH (a byte-order mark) are not the message's.
fn push_key(control_id: &str, msg: &[u8]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let start = msg.windows(3).position(|w| w == b"MSH").unwrap_or(0);
    let end = msg[start..]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map_or(msg.len(), |e| start + e);
    let msh = &msg[start..end];
    match msh.get(3) {
        Some(&sep) => {
            for (i, f) in msh.split(|&b| b == sep).enumerate() {
                // f[0] = "MSH", f[1] = MSH-2, so MSH-7 = f[6].
                if i != 6 {
                    h.update(f);
                }
                h.update([sep]);
            }
        }
        None => h.update(msh),
    }
    // The segments after the MSH, whatever ends them (a resend may use LF, or lose its last CR).
    for segment in msg[end..]
        .split(|&b| b == b'\r' || b == b'\n')
        .filter(|s| !s.is_empty())
    {
        h.update(b"\r");
        h.update(segment);
    }
    let digest = h.finalize();
    format!("{control_id}#{}", crate::hex::encode(&digest[..8]))
}

/// One message: to the engine, then the ACK that says what became of it.
async fn handle(msg: &[u8], cert_name: Option<&str>, ctx: &Context) -> String {
    let Some(msh) = parse_msh(msg).filter(|m| !m.control_id.is_empty()) else {
        let msh = parse_msh(msg).unwrap_or_default();
        return build_ack(
            &msh,
            Code::Reject,
            Some((
                "MSH-10",
                "no_control_id",
                "no MSH segment with a control id (MSH-10)",
            )),
        );
    };
    // The sender: its certificate's name under mutual TLS, else what its MSH says it is.
    let sender = match cert_name {
        Some(n) => format!("mllp-cert:{n}"),
        None => format!("mllp:{}|{}", msh.sending_app, msh.sending_facility),
    };
    let mut body = msg.to_vec();
    if !body.ends_with(b"\r") && !body.ends_with(b"\n") {
        body.push(b'\r');
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let mut cmd = Command::Push {
        pipeline: ctx.pipeline,
        client: sender,
        key: push_key(&msh.control_id, msg),
        body: body.into(),
        cursor: None,
        reply,
    };
    // A full queue holds the sender back for a while before it is told to resend.
    let mut waited = Duration::ZERO;
    loop {
        match ctx.engine.try_send(cmd) {
            Ok(()) => break,
            Err(TrySendError::Full(c)) if waited < Duration::from_secs(10) => {
                cmd = c;
                tokio::time::sleep(Duration::from_millis(20)).await;
                waited += Duration::from_millis(20);
            }
            Err(_) => {
                return build_ack(
                    &msh,
                    Code::Reject,
                    Some(("", "busy", "the gateway cannot take it now; resend")),
                );
            }
        }
    }
    match answer.await {
        Ok(Ok(a)) => ack_for(&msh, &a),
        // The same message from the same sender with another MSH-7: taken once already.
        Ok(Err(PushError::KeyReused)) => build_ack(&msh, Code::Accept, None),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "an MLLP message was not stored; the sender is told to resend");
            build_ack(
                &msh,
                Code::Reject,
                Some(("", "store", "the gateway cannot store it now; resend")),
            )
        }
        Err(_) => build_ack(
            &msh,
            Code::Reject,
            Some(("", "stopping", "the gateway is stopping; resend")),
        ),
    }
}

/// AA when anything of the message was stored (or nothing of it was for us and nothing was
/// wrong); AE naming the first rejection when all of it was rejected (it is quarantined).
fn ack_for(msh: &Msh, a: &PushAnswer) -> String {
    match a.rejected.first() {
        Some(r) if a.accepted == 0 => build_ack(
            msh,
            Code::Error,
            Some((r.field.as_deref().unwrap_or(""), &r.kind, &r.reason)),
        ),
        _ => build_ack(msh, Code::Accept, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ack_answers_the_control_id_in_the_messages_mode() {
        let m = parse_msh(
            b"MSH|^~\\&|EMS|WVEMS|PNP|WV|20260301||REF^I12^REF_I12|M-77|P|2.5.1\rPID|1\r",
        )
        .unwrap();
        assert_eq!(
            (m.control_id.as_str(), m.trigger.as_str(), m.enhanced),
            ("M-77", "I12", false)
        );
        let ack = build_ack(&m, Code::Accept, None);
        assert!(ack.contains("\rMSA|AA|M-77\r"), "{ack}");
        assert!(ack.starts_with("MSH|^~\\&|PNP|WV|EMS|WVEMS|"), "{ack}");
        let e = parse_msh(b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|X1|P|2.5.1|||AL|NE\r").unwrap();
        assert!(e.enhanced);
        let ack = build_ack(
            &e,
            Code::Error,
            Some(("PID-7", "bad_date", "not a date | or ^")),
        );
        assert!(ack.contains("MSA|CE|X1"), "{ack}");
        assert!(
            ack.contains("field PID-7: bad_date: not a date \\F\\ or \\S\\"),
            "{ack}"
        );
    }

    /// A sender with `#` for its field separator may have a `|` in MSH-10, and a stray frame
    /// byte may sit in a field: the ACK, written with `|`, keeps two segments of its fields.
    #[test]
    fn the_ack_keeps_its_structure_whatever_the_sender_put_in_its_fields() {
        let m = parse_msh(b"MSH#^~\\&#EMS#WV\x0bEMS#PNP#WV#2026##ADT^A01#inj|MSA|AA#P#2.5.1\r")
            .unwrap();
        let ack = build_ack(&m, Code::Accept, None);
        let segments: Vec<&str> = ack.trim_end_matches('\r').split('\r').collect();
        assert_eq!(segments.len(), 2, "{ack:?}");
        assert_eq!(segments[1], "MSA|AA|inj\\F\\MSA\\F\\AA", "{ack:?}");
        assert_eq!(segments[0].split('|').count(), 12, "{ack:?}");
        assert!(!ack.contains('\x0b'), "{ack:?}");
    }
}
