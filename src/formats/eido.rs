//! NENA EIDO JSON (NENA-STA-021): the component graph is resolved through `$id`/`$ref`; the
//! incident, call, location, person, notes and additional-data components are read, including the
//! PIDF-LO civic address and the vCard XML that EIDO carries inside JSON strings; `tel:`/`sip:`
//! URIs become phones; notes (HTML) become plain text. A document without an
//! `incidentComponent` (the official call-transfer sample) still yields an incident from its
//! call, location and person components, with the top-level `$id` as the incident id.
//!
//! Each EIDO becomes a normalized JSON object that `mappings/nena-eido.toml` maps:
//! `{id, incident_id, type_code, type_text, priority, received, answered, status,
//!   location{street, city, county, state, zip, country, lat, lon, description},
//!   disposition{code, text}, narrative, callers[], subjects[], others[]}`,
//! each person `{name{last, first, middle}, full_name, dob, sex, phones[], emails[]}`.

use super::{FileError, Item, Position, Rejection};
use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::io::Read;

/// An EIDO larger than this is rejected unread.
pub const MAX_DOCUMENT_BYTES: u64 = 32 << 20;

const COMPONENTS: &[&str] = &[
    "incidentComponent",
    "callComponent",
    "callbackComponent",
    "dispatchComponent",
    "notesComponent",
    "emergencyResourceComponent",
    "alarmsSensorsComponent",
    "agencyComponent",
    "agentComponent",
    "additionalDataComponent",
    "locationComponent",
    "personComponent",
    "vehicleComponent",
    "cautionComponent",
    "mediaComponent",
    "sharedCommunicationResourceComponent",
    "externalInformationSourceComponent",
    "mergeComponent",
    "linkComponent",
];

/// Reads a file holding one EIDO (an object) or several (an array).
pub struct EidoReader {
    items: std::vec::IntoIter<Item<Value>>,
}

impl EidoReader {
    pub fn new<R: Read>(inner: R) -> Result<Self, FileError> {
        let mut text = Vec::new();
        inner.take(MAX_DOCUMENT_BYTES + 1).read_to_end(&mut text)?;
        let pos = |record| Position {
            byte: 0,
            line: 0,
            record,
        };
        let items = if text.len() as u64 > MAX_DOCUMENT_BYTES {
            vec![Item::Rejected(
                pos(1),
                Rejection::new(
                    "record_too_long",
                    format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes"),
                ),
            )]
        } else {
            let body = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&text);
            match serde_json::from_slice::<Value>(body) {
                Err(e) => vec![Item::Rejected(
                    Position {
                        byte: 0,
                        line: e.line() as u64,
                        record: 1,
                    },
                    Rejection::new(
                        if e.is_eof() {
                            "truncated_json"
                        } else {
                            "invalid_json"
                        },
                        format!("not JSON: {e}"),
                    ),
                )],
                Ok(Value::Array(docs)) => docs
                    .iter()
                    .enumerate()
                    .map(|(i, d)| match normalize(d) {
                        Ok(v) => Item::Record(pos(i as u64 + 1), v),
                        Err(r) => Item::Rejected(pos(i as u64 + 1), r),
                    })
                    .collect(),
                Ok(doc) => vec![match normalize(&doc) {
                    Ok(v) => Item::Record(pos(1), v),
                    Err(r) => Item::Rejected(pos(1), r),
                }],
            }
        };
        Ok(EidoReader {
            items: items.into_iter(),
        })
    }

    pub fn next_item(&mut self) -> Result<Option<Item<Value>>, FileError> {
        Ok(self.items.next())
    }
}

fn violation(why: String) -> Rejection {
    Rejection::new("not_eido", why)
}

/// A string that is a real value, not a schema placeholder.
fn real(v: &Value) -> Option<&str> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "string")
}

/// The component graph: every object with an `$id`, by id.
struct Graph<'a> {
    by_id: HashMap<&'a str, &'a Value>,
}

impl<'a> Graph<'a> {
    fn new(doc: &'a Value) -> Result<Self, Rejection> {
        let mut by_id = HashMap::new();
        let mut refs = Vec::new();
        collect(doc, "", &mut by_id, &mut refs, 0)?;
        for (path, r) in &refs {
            if !by_id.contains_key(r.as_str()) {
                return Err(violation(format!(
                    "{path}: its `$ref` points to no component"
                )));
            }
        }
        Ok(Graph { by_id })
    }

    /// Follows `{"$ref": id}` (through any chain) to the component; cycles are errors.
    fn deref(&self, v: &'a Value) -> Result<&'a Value, Rejection> {
        let mut seen = HashSet::new();
        let mut at = v;
        while let Some(r) = at.get("$ref").and_then(Value::as_str) {
            if !seen.insert(r) {
                return Err(violation("a `$ref` leads around a cycle".into()));
            }
            at = self
                .by_id
                .get(r)
                .copied()
                .ok_or_else(|| violation("a `$ref` points to no component".into()))?;
        }
        Ok(at)
    }

    fn refs(&self, v: &'a Value) -> Result<Vec<&'a Value>, Rejection> {
        match v {
            Value::Array(a) => a.iter().map(|x| self.deref(x)).collect(),
            Value::Null => Ok(Vec::new()),
            x => Ok(vec![self.deref(x)?]),
        }
    }
}

fn collect<'a>(
    v: &'a Value,
    path: &str,
    by_id: &mut HashMap<&'a str, &'a Value>,
    refs: &mut Vec<(String, String)>,
    depth: usize,
) -> Result<(), Rejection> {
    if depth > 64 {
        return Err(violation(format!("{path}: nested deeper than 64 levels")));
    }
    match v {
        Value::Object(m) => {
            if let Some(id) = m.get("$id").and_then(Value::as_str) {
                by_id.insert(id, v);
            }
            if let Some(r) = m.get("$ref") {
                match r.as_str() {
                    Some(r) => refs.push((path.to_string(), r.to_string())),
                    None => return Err(violation(format!("{path}: `$ref` is not a string"))),
                }
            }
            for (k, x) in m {
                collect(x, &format!("{path}/{k}"), by_id, refs, depth + 1)?;
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect(x, &format!("{path}/{i}"), by_id, refs, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Checks the document's shape and reads it into the normalized form.
pub fn normalize(doc: &Value) -> Result<Value, Rejection> {
    let Value::Object(top) = doc else {
        return Err(violation("the document is not a JSON object".into()));
    };
    let id = real(&top.get("$id").cloned().unwrap_or(Value::Null))
        .map(str::to_string)
        .ok_or_else(|| violation("`$id` (the incident URN) is missing or a placeholder".into()))?;
    let mut any = false;
    for key in COMPONENTS {
        let Some(list) = top.get(*key) else { continue };
        let arr = list
            .as_array()
            .ok_or_else(|| violation(format!("`{key}` is not an array")))?;
        for (i, c) in arr.iter().enumerate() {
            let at = format!("{key}[{i}]");
            if !c.is_object() {
                return Err(violation(format!("{at} is not an object")));
            }
            if real(&c["$id"]).is_none() {
                return Err(violation(format!("{at}.$id is missing or a placeholder")));
            }
            match c.get("lastUpdateTimeStamp").and_then(Value::as_str) {
                Some(t) if chrono::DateTime::parse_from_rfc3339(t).is_ok() => {}
                Some(_) => {
                    return Err(violation(format!(
                        "{at}.lastUpdateTimeStamp is not an RFC 3339 date-time"
                    )));
                }
                None => return Err(violation(format!("{at}.lastUpdateTimeStamp is missing"))),
            }
            any = true;
        }
    }
    if !any {
        return Err(violation(
            "no EIDO components (incidentComponent, callComponent, ...)".into(),
        ));
    }
    let g = Graph::new(doc)?;
    let comps = |key: &str| {
        top.get(key)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    };

    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    let incident = comps("incidentComponent").first();
    let call = comps("callComponent").first();
    let s = |v: Option<&Value>, k: &str| v.and_then(|x| real(&x[k])).map(str::to_string);
    out.insert(
        "incident_id".into(),
        json!(s(incident, "internalIncidentId").unwrap_or_else(|| id.clone())),
    );
    let type_code = s(incident, "incidentTypeInternalCode")
        .or_else(|| s(incident, "incidentTypeCommonRegistryText"));
    let type_text = s(incident, "incidentTypeInternalText")
        .or_else(|| s(incident, "incidentTypeCommonRegistryText"));
    put(&mut out, "type_code", type_code);
    put(&mut out, "type_text", type_text);
    put(&mut out, "call_type", s(call, "standardPrimaryCallType"));
    put(
        &mut out,
        "priority",
        incident
            .and_then(|i| i.get("incidentCommonPriorityNumber"))
            .map(|p| p.to_string())
            .or_else(|| s(incident, "incidentPriorityInternalText")),
    );
    put(
        &mut out,
        "status",
        incident
            .and_then(|i| i["incidentStatusCommonRegistryText"].as_array())
            .and_then(|a| a.first())
            .and_then(real)
            .map(str::to_string),
    );
    put(&mut out, "beat", s(incident, "beatOrDispatchGroupText"));
    put(
        &mut out,
        "received",
        s(call, "callStartTimestamp")
            .or_else(|| s(incident, "lastUpdateTimeStamp"))
            .or_else(|| real(&doc["lastUpdateTimeStamp"]).map(str::to_string)),
    );
    put(&mut out, "answered", s(call, "answerDate"));

    // Location: the incident's, else the call's, else the first with a value.
    let mut locations: Vec<&Value> = Vec::new();
    for holder in [incident, call].into_iter().flatten() {
        locations.extend(g.refs(&holder["locationReference"])?);
    }
    locations.extend(comps("locationComponent"));
    if let Some(loc) = locations.iter().find_map(|l| location(l).transpose()) {
        out.insert("location".into(), loc?);
    }

    if let Some(d) = incident
        .and_then(|i| i["dispositionComponent"].as_array())
        .and_then(|a| {
            a.iter()
                .find(|d| d["dispositionPrimaryIndicator"] == true)
                .or_else(|| a.first())
        })
    {
        out.insert(
            "disposition".into(),
            json!({"code": real(&d["dispositionCommonRegistryCode"]), "text": real(&d["dispositionDescriptionText"]).or_else(|| real(&d["dispositionCategoryText"]))}),
        );
    }

    // Narrative: notes (HTML) and additional-data comments.
    let mut notes: Vec<String> = comps("notesComponent")
        .iter()
        .filter_map(|n| real(&n["notesActionComments"]))
        .map(html_to_text)
        .collect();
    for a in comps("additionalDataComponent") {
        if let Some(x) = real(&a["additionalDataByValue"]) {
            notes.extend(
                xml_texts(x, &["Comment"])
                    .map_err(|e| violation(format!("additional data: {e}")))?,
            );
        }
    }
    if !notes.is_empty() {
        out.insert("narrative".into(), json!(notes.join("\n")));
    }

    // Persons by role.
    let mut callers = Vec::new();
    let mut subjects = Vec::new();
    let mut others = Vec::new();
    for p in comps("personComponent") {
        let roles: Vec<String> = p["personIncidentRoleRegistryText"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(real)
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default();
        if roles.is_empty() {
            return Err(violation(
                "a personComponent has no personIncidentRoleRegistryText".into(),
            ));
        }
        let person = person(&g, p)?;
        if roles
            .iter()
            .any(|r| r == "caller" || r.contains("reporting"))
        {
            callers.push(person);
        } else if roles.iter().any(|r| {
            ["patient", "subject", "suspect", "involved"]
                .iter()
                .any(|x| r.contains(x))
        }) {
            subjects.push(person);
        } else {
            others.push(person);
        }
    }
    out.insert("callers".into(), Value::Array(callers));
    out.insert("subjects".into(), Value::Array(subjects));
    out.insert("others".into(), Value::Array(others));
    Ok(Value::Object(out))
}

fn put(out: &mut Map<String, Value>, k: &str, v: Option<String>) {
    if let Some(v) = v {
        out.insert(k.into(), Value::String(v));
    }
}

/// A person component: NIEM name, birth date and sex; phones and emails from its callback and
/// additional data (vCard).
fn person(g: &Graph, p: &Value) -> Result<Value, Rejection> {
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
fn location(l: &Value) -> Result<Option<Value>, Rejection> {
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

/// Leaf elements of an XML string by local name (first occurrence wins).
fn xml_fields(xml: &str) -> Result<HashMap<String, String>, String> {
    let mut r = Reader::from_str(xml);
    r.config_mut().trim_text(true);
    let mut out = HashMap::new();
    let mut stack: Vec<String> = Vec::new();
    let mut depth_guard = 0usize;
    loop {
        match r.read_event().map_err(|e| format!("XML: {e}"))? {
            Event::Start(e) => {
                depth_guard += 1;
                if depth_guard > 64 {
                    return Err("XML nested deeper than 64 levels".into());
                }
                stack.push(e.local_name().as_ref().to_string());
            }
            Event::End(_) => {
                stack.pop();
                depth_guard = depth_guard.saturating_sub(1);
            }
            Event::Text(t) => {
                if let Some(name) = stack.last() {
                    out.entry(name.clone())
                        .or_insert_with(|| t.xml10_content().into_owned());
                }
            }
            Event::GeneralRef(e)
                if e.resolve_char_ref().is_err()
                    || !e.is_char_ref()
                        && !matches!(&*e, "amp" | "lt" | "gt" | "quot" | "apos") =>
            {
                // Its name is not quoted: it stands inside a value.
                return Err("an entity other than XML's predefined ones is not expanded".into());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Texts of the elements with these local names.
fn xml_texts(xml: &str, names: &[&str]) -> Result<Vec<String>, String> {
    let mut r = Reader::from_str(xml);
    r.config_mut().trim_text(true);
    let mut out = Vec::new();
    let mut inside = 0usize;
    loop {
        match r.read_event().map_err(|e| format!("XML: {e}"))? {
            Event::Start(e) if names.contains(&e.local_name().as_ref()) => inside += 1,
            Event::End(e) if names.contains(&e.local_name().as_ref()) => {
                inside = inside.saturating_sub(1)
            }
            Event::Text(t) if inside > 0 => out.push(t.xml10_content().into_owned()),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

#[derive(Default)]
struct VCard {
    last: Option<String>,
    first: Option<String>,
    uris: Vec<String>,
    emails: Vec<String>,
}

/// Names, telephone URIs and emails from an additional-data XML string holding a vCard.
fn vcard(xml: &str) -> Result<VCard, String> {
    let mut r = Reader::from_str(xml);
    r.config_mut().trim_text(true);
    let mut v = VCard::default();
    let mut stack: Vec<String> = Vec::new();
    loop {
        match r.read_event().map_err(|e| format!("XML: {e}"))? {
            Event::Start(e) => {
                if stack.len() > 64 {
                    return Err("XML nested deeper than 64 levels".into());
                }
                stack.push(e.local_name().as_ref().to_string());
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                let text = t.xml10_content().into_owned();
                let path: Vec<&str> = stack.iter().map(String::as_str).collect();
                match path.as_slice() {
                    [.., "n", "surname"] => v.last = Some(text),
                    [.., "n", "given"] => v.first = Some(text),
                    [.., "tel", "uri"] => v.uris.push(text),
                    [.., "email", "text"] => v.emails.push(text),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(v)
}

/// Plain text from an HTML note: tags dropped, common entities decoded, whitespace collapsed.
fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_html() {
        let (mut p, mut e) = (Vec::new(), Vec::new());
        push_uri("sip:8195551212@osp.com", &mut p, &mut e);
        push_uri("tel:8195551212", &mut p, &mut e);
        push_uri("tel:+1-304-555-0100;ext=2", &mut p, &mut e);
        push_uri("sip:alice@example.com", &mut p, &mut e);
        assert_eq!(p, ["8195551212", "13045550100"]);
        assert_eq!(
            html_to_text("<p>Caller&nbsp;says <b>help</b> &amp; more</p>"),
            "Caller says help & more"
        );
    }

    #[test]
    fn refs_must_resolve_and_not_cycle() {
        let ts = "2021-04-30T14:40:00-04:00";
        let doc = json!({"$id": "urn:x", "personComponent": [{"$id": "p1", "lastUpdateTimeStamp": ts, "personIncidentRoleRegistryText": ["Caller"], "callBackReference": {"$ref": "nowhere"}}]});
        assert!(
            normalize(&doc)
                .unwrap_err()
                .reason
                .contains("points to no component")
        );
        let cyc = json!({"$id": "urn:x", "a": {"$id": "a", "$ref": "b"}, "b": {"$id": "b", "$ref": "a"},
            "personComponent": [{"$id": "p1", "lastUpdateTimeStamp": ts, "personIncidentRoleRegistryText": ["Caller"], "callBackReference": {"$ref": "a"}}]});
        assert!(normalize(&cyc).unwrap_err().reason.contains("cycle"));
        let placeholder = json!({"$id": "string", "callComponent": []});
        assert!(
            normalize(&placeholder)
                .unwrap_err()
                .reason
                .contains("placeholder")
        );
    }
}
