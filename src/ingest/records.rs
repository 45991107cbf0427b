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
