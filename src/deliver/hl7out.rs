//! The `hl7` destination: a consented referral as an HL7 v2.5.1 REF^I12 (MSH, RF1, PRD for the
//! referring peer and the referred-to provider, PID with the consented fields only, NTE with the
//! 42 CFR 2.32 notice and the consent's scope), escaped, sent over MLLP, the ACK correlated by
//! MSA-2 = MSH-10. Built from the payload the profile produced, never from the incident. The
//! message is built here; `mllp_client.rs` sends it and reads the ACK, so that the encoding can
//! be tested (and reused by cancellations) without a connection.

use serde_json::Value;

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

#[cfg(test)]
mod tests {
    use super::*;

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
