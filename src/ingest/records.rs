//! Reading the PRSS's records: consents and engagements from CSV (a header row; list columns
//! separated by `;`) or JSON (an array of objects). A record that cannot be read does not stop
//! the others: it is reported with the line an editor shows, the field and the reason, and never
//! with a value of the record (a misplaced column may hold a name or a date of birth).

use super::positions::{Lines, element_lines};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;
use std::path::Path;

/// Columns that hold lists in CSV files.
const LIST_COLUMNS: &[&str] = &["information", "recipients"];
/// Columns that hold yes/no values in CSV files.
const BOOL_COLUMNS: &[&str] = &["tpo"];

/// Where a record starts: the line an editor shows (a CSV header is line 1, a quoted field
/// spanning lines counts them all; for JSON the line of the object's `{`), and for FHIR the
/// resource's 1-based place in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub line: usize,
    pub resource: Option<usize>,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resource {
            Some(r) => write!(f, "{} (resource {r})", self.line),
            None => write!(f, "{}", self.line),
        }
    }
}

/// A record that could not be read: where, the field at fault (when one is), the record's `id`
/// (ours, when it has one) and why. Holds no other value of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub at: At,
    pub id: Option<String>,
    pub field: Option<String>,
    pub reason: String,
}

/// A file's records: those read (with where each starts) and those that could not be.
#[derive(Debug)]
pub struct Records<T> {
    pub rows: Vec<(At, T)>,
    pub bad: Vec<Bad>,
}

/// A consent as imported, with the revocation recorded in the same file (`revoked_on`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentRow {
    pub consent: crate::model::Consent,
    pub revoked_on: Option<NaiveDate>,
}

/// How a text is to be read: JSON (an array of objects, or one), CSV (a header row), FHIR R4
/// (`Consent` resources: one, or a Bundle of them), or guessed from the name's extension and the
/// first character (a file on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Json,
    Csv,
    Fhir,
    Guess,
}

/// Reads a file whole: its name as messages give it, and its text. The message names the file
/// (the path is the operator's, not a record's).
pub fn load(path: &Path) -> Result<(String, String), String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    Ok((name, text))
}

/// Reads `path` as a list of `T`. `Err` is a problem with the whole file (it cannot be read, its
/// JSON does not parse, its CSV header is unreadable): nothing of it can be trusted.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Records<T>, String> {
    let (name, text) = load(path)?;
    read_text(&name, &text, Content::Guess)
}

/// [`read`] of a text already in memory (a request's body): `name` is what messages call it.
/// FHIR is not a form of these records.
pub fn read_text<T: DeserializeOwned>(
    name: &str,
    text: &str,
    content: Content,
) -> Result<Records<T>, String> {
    let mut out = Records {
        rows: Vec::new(),
        bad: Vec::new(),
    };
    for (at, obj) in objects(name, text, content)? {
        match obj.and_then(|o| parse::<T>(at, o)) {
            Ok(t) => out.rows.push((at, t)),
            Err(b) => out.bad.push(b),
        }
    }
    Ok(out)
}

/// Each record of a CSV or JSON file as a JSON object, with where it starts.
type Objects = Vec<(At, Result<Map<String, Value>, Bad>)>;

fn objects(name: &str, text: &str, content: Content) -> Result<Objects, String> {
    let is_json = match content {
        Content::Json => true,
        Content::Csv => false,
        Content::Fhir => return Err(format!("{name}: not a form these records come in (FHIR)")),
        Content::Guess => {
            Path::new(name)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
                || text.trim_start().starts_with(['[', '{'])
        }
    };
    if !is_json {
        return csv_rows(name, text);
    }
    let values: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(a)) => a,
        Ok(v @ Value::Object(_)) => vec![v],
        Ok(_) => return Err(format!("{name}: expected an array of objects")),
        Err(e) => {
            return Err(format!(
                "{name}:{}: JSON syntax error (column {})",
                e.line(),
                e.column()
            ));
        }
    };
    let lines = element_lines(text, &[]).unwrap_or_default();
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let at = At {
                line: lines.get(i).copied().unwrap_or(1),
                resource: None,
            };
            match v {
                Value::Object(o) => (at, Ok(o)),
                _ => (at, Err(bad(at, None, None, "not a JSON object"))),
            }
        })
        .collect())
}

fn bad(at: At, id: Option<String>, field: Option<&str>, reason: &str) -> Bad {
    Bad {
        at,
        id,
        field: field.map(str::to_owned),
        reason: reason.to_owned(),
    }
}

/// The record's `id`, when it is a string: ids are ours (the PRSS's), not the person's.
fn id_of(o: &Map<String, Value>) -> Option<String> {
    o.get("id").and_then(Value::as_str).map(str::to_owned)
}

/// Deserializes one record. serde_json's messages for a bad value name neither the field nor
/// hide the value; this finds the field (serde reads the fields in the map's order and stops at
/// the first bad one, reporting missing fields only at the end: the shortest prefix of the
/// fields that fails otherwise than for a missing field ends with the culprit) and keeps only
/// the expectation.
fn parse<T: DeserializeOwned>(at: At, obj: Map<String, Value>) -> Result<T, Bad> {
    let id = id_of(&obj);
    let msg = match serde_json::from_value::<T>(Value::Object(obj.clone())) {
        Ok(t) => return Ok(t),
        Err(e) => e.to_string(),
    };
    if let Some(f) = backticked_after(&msg, "missing field ") {
        return Err(bad(at, id, Some(&f), "is required"));
    }
    if let Some(f) = backticked_after(&msg, "unknown field ") {
        // A header that is really a data row would name a value: name only field-like keys.
        let shown = field_like(&f).then_some(f.as_str());
        return Err(bad(at, id, shown, "is not a known field"));
    }
    let mut prefix = Map::new();
    let mut field = None;
    for (k, v) in &obj {
        prefix.insert(k.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<T>(Value::Object(prefix.clone()))
            && !e.to_string().starts_with("missing field ")
        {
            field = Some(k.clone());
            break;
        }
    }
    Err(Bad {
        at,
        id,
        field,
        reason: reason(&msg),
    })
}

/// The `name` in "<lead>`name`...".
fn backticked_after(msg: &str, lead: &str) -> Option<String> {
    let rest = msg.strip_prefix(lead)?.strip_prefix('`')?;
    Some(rest[..rest.find('`')?].to_string())
}

fn field_like(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

/// A serde message without the value it may quote (`invalid type: string "DOE", expected ...`,
/// `unknown variant `DOE`, expected one of ...`): what kind of problem, and what was expected.
fn reason(msg: &str) -> String {
    let expected = msg.find("expected ").map(|i| &msg[i..]);
    for (lead, kind) in [
        ("invalid type", "wrong type"),
        ("invalid value", "invalid value"),
        ("invalid length", "wrong number of entries"),
        ("unknown variant", "not an allowed value"),
    ] {
        if msg.starts_with(lead) {
            return match expected {
                Some(x) => format!("{kind}, {x}"),
                None => kind.to_string(),
            };
        }
    }
    // chrono's messages for a date that does not parse quote nothing.
    if [
        "input ",
        "premature end of input",
        "trailing input",
        "no possible date",
    ]
    .iter()
    .any(|m| msg.starts_with(m))
    {
        return format!("not a date (YYYY-MM-DD): {msg}");
    }
    // Others should quote nothing either; drop anything quoted all the same.
    let mut out = String::new();
    let mut quote = None;
    for ch in msg.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch == '"' || ch == '`' => {
                quote = Some(ch);
                out.push('…');
            }
            None => out.push(ch),
        }
    }
    out
}

fn csv_rows(name: &str, text: &str) -> Result<Objects, String> {
    let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| format!("{name}:1: header: {}", e.kind_str()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut lines = Lines::new(text);
    let mut rows = Vec::new();
    let mut rec = csv::StringRecord::new();
    loop {
        // The record's position is where the reader stood before it (the end of the previous
        // record, before its line break): the editor's line is that of the record's first byte.
        let start = rdr.position().byte() as usize;
        let at = |lines: &mut Lines| At {
            line: lines.start_of_record(start),
            resource: None,
        };
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                let at = at(&mut lines);
                rows.push((at, csv_object(at, &headers, &rec)));
            }
            Err(e) => {
                let at = at(&mut lines);
                rows.push((at, Err(bad(at, None, None, &e.kind_str()))));
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
            }
        }
    }
    Ok(rows)
}

/// One CSV record as the JSON object serde reads: list columns split on `;`, yes/no columns as
/// booleans, empty cells absent.
fn csv_object(
    at: At,
    headers: &[String],
    rec: &csv::StringRecord,
) -> Result<Map<String, Value>, Bad> {
    let mut obj = Map::new();
    for (h, v) in headers.iter().zip(rec.iter()) {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        let value = if LIST_COLUMNS.contains(&h.as_str()) {
            Value::Array(
                v.split(';')
                    .map(|x| Value::String(x.trim().to_string()))
                    .filter(|x| x != "")
                    .collect(),
            )
        } else if BOOL_COLUMNS.contains(&h.as_str()) {
            match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "1" => Value::Bool(true),
                "false" | "no" | "n" | "0" => Value::Bool(false),
                _ => {
                    let id = rec.get(headers.iter().position(|h| h == "id").unwrap_or(usize::MAX));
                    return Err(bad(
                        at,
                        id.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
                        Some(h),
                        "not a yes/no value",
                    ));
                }
            }
        } else {
            Value::String(v.to_string())
        };
        obj.insert(h.clone(), value);
    }
    Ok(obj)
}

trait KindStr {
    fn kind_str(&self) -> String;
}

impl KindStr for csv::Error {
    fn kind_str(&self) -> String {
        match self.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => {
                format!("expected {expected_len} fields, found {len}")
            }
            csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".into(),
            _ => "unreadable row".into(),
        }
    }
}

/// Extension URLs for the 42 CFR 2.31 elements FHIR R4 Consent has no element for.
pub const EXT_RIGHT_TO_REVOKE: &str =
    "https://pnp-gateway.example/fhir/StructureDefinition/right-to-revoke-statement";
pub const EXT_REDISCLOSURE: &str =
    "https://pnp-gateway.example/fhir/StructureDefinition/redisclosure-statement";
pub const EXT_EXPIRY_EVENT: &str =
    "https://pnp-gateway.example/fhir/StructureDefinition/expiry-event";

/// Reads consents: our CSV or JSON (with an optional `revoked_on` date, a revocation recorded
/// at import), or FHIR R4 `Consent` resources (one, or a Bundle of them).
pub fn read_consents(path: &Path) -> Result<Records<ConsentRow>, String> {
    let (name, text) = load(path)?;
    read_consents_text(&name, &text, Content::Guess)
}

/// [`read_consents`] of a text already in memory (a request's body): `name` is what messages
/// call it. JSON that is a FHIR `Consent` or `Bundle` is read as FHIR whatever `content` says
/// but CSV, as the command line does; `Content::Fhir` insists on it.
pub fn read_consents_text(
    name: &str,
    text: &str,
    content: Content,
) -> Result<Records<ConsentRow>, String> {
    let value = match content {
        Content::Csv => None,
        Content::Fhir => Some(serde_json::from_str::<Value>(text).map_err(|e| {
            format!(
                "{name}:{}: JSON syntax error (column {})",
                e.line(),
                e.column()
            )
        })?),
        Content::Json | Content::Guess => serde_json::from_str::<Value>(text).ok(),
    };
    let fhir: Option<(Vec<Value>, Vec<usize>)> =
        value.and_then(|v| match v.get("resourceType").and_then(Value::as_str) {
            Some("Consent") => Some((vec![v], element_lines(text, &[]).unwrap_or_default())),
            Some("Bundle") => Some((
                v["entry"]
                    .as_array()
                    .map(|es| es.iter().map(|e| e["resource"].clone()).collect())
                    .unwrap_or_default(),
                element_lines(text, &["entry"]).unwrap_or_default(),
            )),
            _ => None,
        });
    let mut out = Records {
        rows: Vec::new(),
        bad: Vec::new(),
    };
    let Some((resources, lines)) = fhir else {
        if content == Content::Fhir {
            return Err(format!(
                "{name}: not a FHIR R4 Consent, nor a Bundle of them"
            ));
        }
        for (at, obj) in objects(name, text, content)? {
            match obj.and_then(|o| consent_row(at, o)) {
                Ok(c) => out.rows.push((at, c)),
                Err(b) => out.bad.push(b),
            }
        }
        return Ok(out);
    };
    for (i, r) in resources.iter().enumerate() {
        let at = At {
            line: lines.get(i).copied().unwrap_or(1),
            resource: Some(i + 1),
        };
        match fhir_consent(r) {
            Ok(consent) => out.rows.push((
                at,
                ConsentRow {
                    consent,
                    revoked_on: None,
                },
            )),
            Err(e) => out
                .bad
                .push(bad(at, r["id"].as_str().map(str::to_owned), None, &e)),
        }
    }
    Ok(out)
}

/// A consent record with its `revoked_on` taken out (it is the registry's, not the consent's).
fn consent_row(at: At, mut obj: Map<String, Value>) -> Result<ConsentRow, Bad> {
    let revoked_on = match obj.remove("revoked_on") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_str().and_then(|s| s.trim().parse().ok()) {
            Some(d) => Some(d),
            None => {
                return Err(bad(
                    at,
                    id_of(&obj),
                    Some("revoked_on"),
                    "not a date (YYYY-MM-DD)",
                ));
            }
        },
    };
    Ok(ConsentRow {
        consent: parse(at, obj)?,
        revoked_on,
    })
}

/// Maps a FHIR R4 Consent (see docs/privacy.md for the mapping) to a consent; elements FHIR
/// lacks come from extensions, and a missing one makes the consent incomplete, not guessed.
pub fn fhir_consent(r: &Value) -> Result<crate::model::Consent, String> {
    use crate::model::{Consent, Information, Sensitive};
    if r["resourceType"] != "Consent" {
        return Err("not a Consent resource".into());
    }
    let status = r["status"].as_str().unwrap_or("");
    if status != "active" {
        // Quoted only when it is one of R4's Consent.status codes: anything else could be
        // anything.
        const STATUSES: [&str; 5] = [
            "draft",
            "proposed",
            "rejected",
            "inactive",
            "entered-in-error",
        ];
        return Err(match STATUSES.contains(&status) {
            true => format!("status is `{status}`, not `active`"),
            false => "status is not `active` (nor another Consent.status code)".into(),
        });
    }
    let provision = &r["provision"];
    if provision["type"] == "deny" {
        return Err("a `deny` provision permits no disclosure".into());
    }
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .filter(|s| !s.trim().is_empty())
    };
    let date = |v: &Value, what: &str| -> Result<Option<chrono::NaiveDate>, String> {
        match v.as_str() {
            None => Ok(None),
            Some(t) => t
                .get(..10)
                .and_then(|d| d.parse().ok())
                .map(Some)
                .ok_or_else(|| format!("`{what}` is not a date")),
        }
    };
    let ext = |url: &str| {
        r["extension"]
            .as_array()
            .and_then(|es| es.iter().find(|e| e["url"] == url))
            .and_then(|e| s(&e["valueString"]))
    };
    let reference_id = |v: &Value| {
        s(&v["reference"])
            .map(|r| r.rsplit('/').next().unwrap_or(&r).to_string())
            .or_else(|| s(&v["display"]))
    };
    let recipients = provision["actor"]
        .as_array()
        .map(|actors| {
            actors
                .iter()
                .filter(|a| {
                    a["role"]["coding"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|c| c["code"] == "IRCP"))
                })
                .filter_map(|a| reference_id(&a["reference"]))
                .collect()
        })
        .unwrap_or_default();
    let purpose = provision["purpose"]
        .as_array()
        .and_then(|ps| ps.first())
        .and_then(|p| {
            s(&p["code"]).map(|c| match c.as_str() {
                "TREAT" => "treatment_referral".to_string(),
                "HPAYMT" => "payment".to_string(),
                "HOPERAT" => "health_care_operations".to_string(),
                other => other.to_ascii_lowercase(),
            })
        });
    // What the person signed for: `provision.class` codings and `provision.code` concepts, each
    // a class (a shorthand) or an element (docs/privacy.md).
    let mut information = Vec::new();
    let codes = provision["class"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| ("provision.class", &c["code"]))
        .chain(
            provision["code"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|cc| cc["coding"].as_array().into_iter().flatten())
                .map(|c| ("provision.code", &c["code"])),
        );
    for (at, code) in codes {
        let info = code.as_str().and_then(Information::parse).ok_or_else(|| {
            format!("`{at}` holds a code that is no information class or element")
        })?;
        if !information.contains(&info) {
            information.push(info);
        }
    }
    if provision["data"].as_array().is_some_and(|d| !d.is_empty()) {
        return Err(
            "`provision.data` names resources, not kinds of information: list the elements in `provision.class` or `provision.code`"
                .into(),
        );
    }
    let signature = r["verification"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["verified"] == true))
        .and_then(|v| s(&v["verifiedWith"]["display"]));
    let tpo = provision["purpose"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| matches!(p["code"].as_str(), Some("TREAT" | "HPAYMT" | "HOPERAT")))
    }) && ext(EXT_REDISCLOSURE).is_some();
    Ok(Consent {
        id: s(&r["id"]).ok_or("no `id`")?,
        patient_name: s(&r["patient"]["display"]).map(Sensitive::new),
        patient_dob: None,
        disclosing: r["organization"]
            .as_array()
            .and_then(|o| o.first())
            .and_then(reference_id),
        information,
        recipients,
        purpose,
        right_to_revoke_statement: ext(EXT_RIGHT_TO_REVOKE),
        expires_on: date(&provision["period"]["end"], "provision.period.end")?,
        expires_event: ext(EXT_EXPIRY_EVENT),
        signature: signature.map(Sensitive::new),
        signed_on: date(&r["dateTime"], "dateTime")?,
        tpo,
        redisclosure_statement: ext(EXT_REDISCLOSURE),
    })
}
