//! A provider's HL7 v2 answer to a referral, read: an RRI^I12 (return referral information) or
//! an application ACK (ACK^I12) for the REF^I12 the gateway sent. Only what the closed loop
//! needs is taken: the message's own control id (MSH-10) and time (MSH-7), the acknowledgment
//! (MSA-1, and MSA-2: the control id of our REF^I12), and the referral's status and id as the
//! provider gives them (RF1-1, RF1-6). The structure is parsed by [`super::hl7::structure`],
//! as ingest parses, so MSH-2 is checked and escapes are undone the same way. A reader only:
//! what a status means for the lifecycle is `policy::hl7_answer`'s to say.

use super::Rejection;
use serde_json::Value;

/// Which answer it is (MSH-9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// `RRI`: return referral information.
    Rri,
    /// `ACK`: an application acknowledgment sent apart from the MLLP exchange.
    Ack,
}

/// The fields of an answer the closed loop reads; each as sent, its first component, trimmed,
/// `None` when empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: ReplyKind,
    /// MSH-10: what our ACK's MSA-2 answers.
    pub control_id: Option<String>,
    /// MSH-7 (HL7 TS).
    pub sent_at: Option<String>,
    /// MSA-1: AA, AE, AR (CA, CE, CR in enhanced mode).
    pub ack_code: Option<String>,
    /// MSA-2: the control id of the message answered (our REF^I12's MSH-10).
    pub acknowledged: Option<String>,
    /// RF1-1.1: the referral's status (HL7 table 0283).
    pub referral_status: Option<String>,
    /// RF1-6.1: the originating referral identifier.
    pub originating_referral: Option<String>,
}

/// The message type (MSH-9.1) of a message, if its first line is an MSH: how a listener tells
/// an answer from an incident before reading it.
pub fn message_type(msg: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(msg).ok()?;
    let line = text
        .split(['\r', '\n'])
        .map(|l| l.trim_start_matches('\u{feff}'))
        .find(|l| !l.trim().is_empty())?;
    let rest = line.strip_prefix("MSH")?;
    let fs = rest.chars().next()?;
    let comp = rest.chars().nth(1).unwrap_or('^');
    let msh9 = line.split(fs).nth(8)?;
    Some(
        msh9.split(comp)
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
    )
}

/// Whether a message type is one of the answers this reader takes.
pub fn is_reply(message_type: &str) -> bool {
    matches!(message_type, "RRI" | "ACK")
}

/// Reads an RRI or ACK message (segments separated by CR, LF or CRLF; a UTF-8 BOM is skipped).
pub fn read(msg: &[u8]) -> Result<Reply, Rejection> {
    let text = std::str::from_utf8(msg)
        .map_err(|_| Rejection::new("invalid_utf8", "the message is not valid UTF-8"))?;
    let segments: Vec<String> = text
        .trim_start_matches('\u{feff}')
        .split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let v = super::hl7::structure(&segments)?;
    let kind = match first(&v, "MSH", 9).as_deref() {
        Some("RRI") => ReplyKind::Rri,
        Some("ACK") => ReplyKind::Ack,
        _ => {
            return Err(
                Rejection::new("not_a_reply", "the message is neither an RRI nor an ACK")
                    .with_field("MSH-9"),
            );
        }
    };
    Ok(Reply {
        kind,
        control_id: first(&v, "MSH", 10),
        sent_at: first(&v, "MSH", 7),
        ack_code: first(&v, "MSA", 1),
        acknowledged: first(&v, "MSA", 2),
        referral_status: first(&v, "RF1", 1),
        originating_referral: first(&v, "RF1", 6),
    })
}

/// The first component of the first repetition of `segment`-`field` in the first such segment.
fn first(v: &Value, segment: &str, field: usize) -> Option<String> {
    let c = v.get(segment)?.get(0)?.get(field)?.get(0)?.get(0)?;
    let s = match c {
        Value::String(s) => s.as_str(),
        // A component with subcomponents: its first.
        Value::Array(a) => a.first()?.as_str()?,
        _ => return None,
    };
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rri_and_an_ack_are_read() {
        let rri = b"MSH|^~\\&|INTAKE|PRESTERA|PNP-GATEWAY|WV-PNP|20261202101500-0500||RRI^I12^RRI_I12|R-1|P|2.5.1\rMSA|AA|0123456789abcdef0123\rRF1|A^Accepted^HL70283|R^Routine^HL70280||||E-2026-001^PNP\r";
        assert_eq!(message_type(rri).as_deref(), Some("RRI"));
        let r = read(rri).unwrap();
        assert_eq!(r.kind, ReplyKind::Rri);
        assert_eq!(r.control_id.as_deref(), Some("R-1"));
        assert_eq!(r.acknowledged.as_deref(), Some("0123456789abcdef0123"));
        assert_eq!(r.referral_status.as_deref(), Some("A"));
        assert_eq!(r.originating_referral.as_deref(), Some("E-2026-001"));
        assert_eq!(r.sent_at.as_deref(), Some("20261202101500-0500"));
        let ack = read(b"MSH|^~\\&|A|B|C|D|2026||ACK^I12^ACK|K-9|P|2.5.1\nMSA|AE|X1\n").unwrap();
        assert_eq!(ack.kind, ReplyKind::Ack);
        assert_eq!(ack.ack_code.as_deref(), Some("AE"));
        assert_eq!(ack.referral_status, None);
        let adt = read(b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5.1\rPID|1\r").unwrap_err();
        assert_eq!(adt.kind, "not_a_reply");
        assert_eq!(
            message_type(b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5.1\r").as_deref(),
            Some("ADT")
        );
        assert!(read(b"MSH|^~|A").is_err(), "a short MSH-2");
    }
}
