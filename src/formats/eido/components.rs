//! Persons and locations: the two EIDO components whose values come from several places
//! (NIEM fields, callback URIs, vCard and PIDF-LO XML carried in strings). Kept apart from the
//! document walk in `mod.rs` so that each normalized field's source is read in one spot.

use super::embedded::{vcard, xml_fields};
use super::graph::Graph;
use super::{real, violation};
use crate::formats::Rejection;
use serde_json::{Map, Value, json};

/// A person component: NIEM name, birth date and sex; phones and emails from its callback and
/// additional data (vCard).
pub(super) fn person(g: &Graph, p: &Value) -> Result<Value, Rejection> {
    let mut o = Map::new();
    let nc = &p["ncPersonComponent"];
    let name = &nc["PersonName"];
    let first = |v: &Value| -> Option<String> {
        match v {
            Value::Array(a) => a.first().and_then(real).map(str::to_string),
            x => real(x).map(str::to_string),
        }
    };
    let mut n = Map::new();
    if let Some(v) = first(&name["PersonSurName"]) {
        n.insert("last".into(), json!(v));
    }
    if let Some(v) = first(&name["PersonGivenName"]) {
        n.insert("first".into(), json!(v));
    }
    if let Some(v) = first(&name["PersonMiddleName"]) {
        n.insert("middle".into(), json!(v));
    }
    if let Some(v) = first(&name["PersonFullName"]) {
        o.insert("full_name".into(), json!(v));
    }
    if let Some(v) = first(&nc["PersonBirthDate"]["Date"]).or_else(|| first(&nc["PersonBirthDate"]))
    {
        o.insert("dob".into(), json!(v));
    }
    if let Some(v) = first(&nc["PersonSexText"]).or_else(|| first(&nc["PersonSexCode"])) {
        o.insert("sex".into(), json!(v));
    }
    let mut phones: Vec<String> = Vec::new();
    let mut emails: Vec<String> = Vec::new();
    for cb in g.refs(&p["callBackReference"])? {
        for uri in cb["callBackInformationUri"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(real)
        {
            push_uri(uri, &mut phones, &mut emails);
        }
    }
    for ad in g.refs(&p["additionalDataReference"])? {
        if let Some(x) = real(&ad["additionalDataByValue"]) {
            let v = vcard(x).map_err(|e| violation(format!("additional data: {e}")))?;
            if n.is_empty() {
                if let Some(l) = v.last {
                    n.insert("last".into(), json!(l));
                }
                if let Some(f) = v.first {
                    n.insert("first".into(), json!(f));
                }
            }
            for u in v.uris {
                push_uri(&u, &mut phones, &mut emails);
            }
            emails.extend(
                v.emails
                    .into_iter()
                    .filter(|e| !emails.contains(e))
                    .collect::<Vec<_>>(),
            );
        }
    }
    if !n.is_empty() {
        o.insert("name".into(), Value::Object(n));
    }
    o.insert("phones".into(), json!(phones));
    o.insert("emails".into(), json!(emails));
    Ok(Value::Object(o))
}

/// `tel:` and `sip:` (with a numeric user part) become phone numbers, `mailto:` emails.
fn push_uri(uri: &str, phones: &mut Vec<String>, emails: &mut Vec<String>) {
    let lower = uri.to_ascii_lowercase();
    let number = if let Some(t) = lower.strip_prefix("tel:") {
        Some(t.split(';').next().unwrap_or(""))
    } else if let Some(sip) = lower
        .strip_prefix("sip:")
        .or_else(|| lower.strip_prefix("sips:"))
    {
        let user = sip.split('@').next().unwrap_or("");
        user.trim_start_matches('+')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-')
            .then_some(user)
    } else {
        None
    };
    if let Some(n) = number {
        let digits: String = n.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 7 && !phones.contains(&digits) {
            phones.push(digits);
        }
    } else if let Some(m) = uri.strip_prefix("mailto:")
        && !emails.iter().any(|e| e == m)
    {
        emails.push(m.to_string());
    }
}

/// A location component's civic address (PIDF-LO) or point.
pub(super) fn location(l: &Value) -> Result<Option<Value>, Rejection> {
    let Some(xml) = real(&l["locationByValue"]) else {
        return Ok(None);
    };
    let civic = xml_fields(xml).map_err(|e| violation(format!("locationByValue: {e}")))?;
    let get = |k: &str| civic.get(k).cloned();
    let street: Vec<String> = ["HNO", "HNS", "PRD", "RD", "STS", "POD"]
        .iter()
        .filter_map(|k| get(k))
        .collect();
    let mut o = Map::new();
    if !street.is_empty() {
        o.insert("street".into(), json!(street.join(" ")));
    }
    for (k, name) in [
        ("A3", "city"),
        ("A2", "county"),
        ("A1", "state"),
        ("PC", "zip"),
        ("country", "country"),
        ("LOC", "description"),
    ] {
        if let Some(v) = get(k) {
            o.insert(name.into(), json!(v));
        }
    }
    if let Some(pos) = get("pos") {
        let mut it = pos.split_whitespace();
        if let (Some(a), Some(b)) = (it.next(), it.next()) {
            o.insert("lat".into(), json!(a));
            o.insert("lon".into(), json!(b));
        }
    }
    if let Some(d) = real(&l["locationDescriptionText"]) {
        o.entry("description").or_insert_with(|| json!(d));
    }
    Ok((!o.is_empty()).then_some(Value::Object(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let (mut p, mut e) = (Vec::new(), Vec::new());
        push_uri("sip:8195551212@osp.com", &mut p, &mut e);
        push_uri("tel:8195551212", &mut p, &mut e);
        push_uri("tel:+1-304-555-0100;ext=2", &mut p, &mut e);
        push_uri("sip:alice@example.com", &mut p, &mut e);
        assert_eq!(p, ["8195551212", "13045550100"]);
    }
}
