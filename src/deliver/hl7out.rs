//! The `hl7` destination: a consented referral as an HL7 v2.5.1 REF^I12 (MSH, RF1, PRD for the
//! referring peer and the referred-to provider, PID with the consented fields only, NTE with the
//! 42 CFR 2.32 notice and the consent's scope), escaped, sent over MLLP, the ACK correlated by
//! MSA-2 = MSH-10. Built from the payload the profile produced, never from the incident.

use super::SendError;
use super::mllp;
use serde_json::Value;
use std::io::Write;
use std::net::TcpStream;
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

/// Where the message goes (MSH-5, MSH-6).
#[derive(Debug, Clone)]
pub struct Receiver {
    pub application: String,
    pub facility: String,
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
        "MSH|^~\\&|PNP-GATEWAY|WV-PNP|{}|{}|{}||REF^I12^REF_I12|{}|P|2.5.1",
        e(&to.application),
        e(&to.facility),
        now.format("%Y%m%d%H%M%S%z"),
        control_id(idempotency_key)
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

/// Sends one message over MLLP and reads its ACK: AA/CA done, AR/CR and no or a mismatched ACK
/// retried, AE/CE dead-lettered.
pub fn send(addr: &str, message: &str, control: &str, timeout: Duration) -> Result<(), SendError> {
    let retry = |m: String| SendError {
        retryable: true,
        message: m,
    };
    let sock: std::net::SocketAddr = addr.parse().map_err(|_| SendError {
        retryable: false,
        message: format!("`{addr}` is not host:port"),
    })?;
    let mut stream = TcpStream::connect_timeout(&sock, timeout)
        .map_err(|e| retry(format!("cannot connect: {}", e.kind())))?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    stream
        .write_all(&mllp::frame(message.as_bytes()))
        .map_err(|e| retry(format!("cannot send: {}", e.kind())))?;
    let mut reader = mllp::FrameReader::new(1 << 20);
    let ack = reader
        .read_frame(&mut stream)
        .map_err(|e| retry(format!("no ACK: {e}")))?;
    let ack = String::from_utf8_lossy(&ack).into_owned();
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
        }),
        other => Err(retry(format!("unknown acknowledgment code `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
