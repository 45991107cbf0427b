//! Reading the PRSS's records: consents and engagements from CSV (a header row; list columns
//! separated by `;`) or JSON (an array of objects). Every problem names the file, the row and
//! the field; a file with any problem imports nothing.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::Path;

/// Columns that hold lists in CSV files.
const LIST_COLUMNS: &[&str] = &["information", "recipients"];
/// Columns that hold yes/no values in CSV files.
const BOOL_COLUMNS: &[&str] = &["tpo"];

/// Reads `path` as a list of `T`, each with the 1-based row (CSV line, or JSON array index).
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Vec<(usize, T)>, Vec<String>> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{name}: cannot read: {e}")])?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with(['[', '{']);
    let rows: Vec<(usize, Value)> = if is_json {
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(a)) => a.into_iter().enumerate().map(|(i, v)| (i + 1, v)).collect(),
            Ok(v @ Value::Object(_)) => vec![(1, v)],
            Ok(_) => return Err(vec![format!("{name}: expected an array of objects")]),
            Err(e) => {
                return Err(vec![format!(
                    "{name}:{}: JSON syntax error (column {})",
                    e.line(),
                    e.column()
                )]);
            }
        }
    } else {
        csv_rows(&name, &text)?
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (row, v) in rows {
        match serde_json::from_value::<T>(v) {
            Ok(t) => out.push((row, t)),
            Err(e) => errors.push(format!(
                "{name}: row {row}: {}",
                scrub_serde(&e.to_string())
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// serde messages may quote the offending value ("invalid value: string \"DOE\""); keep only the
/// part that names the field and the expectation.
fn scrub_serde(msg: &str) -> String {
    match msg.find("invalid value") {
        Some(i) => {
            let expected = msg[i..]
                .find("expected")
                .map(|j| &msg[i + j..])
                .unwrap_or("");
            format!("{}invalid value, {expected}", &msg[..i])
        }
        None => msg.to_string(),
    }
}

fn csv_rows(name: &str, text: &str) -> Result<Vec<(usize, Value)>, Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| vec![format!("{name}: header: {e}")])?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(format!("{name}:{line}: {}", e.kind_str()));
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line()) as usize;
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
                        errors.push(format!("{name}:{line}: field `{h}`: not a yes/no value"));
                        continue;
                    }
                }
            } else {
                Value::String(v.to_string())
            };
            obj.insert(h.clone(), value);
        }
        rows.push((line, Value::Object(obj)));
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
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

/// Reads consents: our CSV or JSON, or FHIR R4 `Consent` resources (one, or a Bundle of them).
pub fn read_consents(path: &Path) -> Result<Vec<(usize, crate::model::Consent)>, Vec<String>> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{name}: cannot read: {e}")])?;
    let fhir: Option<Vec<Value>> = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| match v.get("resourceType").and_then(Value::as_str) {
            Some("Consent") => Some(vec![v]),
            Some("Bundle") => Some(
                v["entry"]
                    .as_array()
                    .map(|es| es.iter().map(|e| e["resource"].clone()).collect())
                    .unwrap_or_default(),
            ),
            _ => None,
        });
    let Some(resources) = fhir else {
        return read(path);
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        match fhir_consent(r) {
            Ok(c) => out.push((i + 1, c)),
            Err(e) => errors.push(format!("{name}: resource {}: {e}", i + 1)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
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
        return Err(format!("status is `{status}`, not `active`"));
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
