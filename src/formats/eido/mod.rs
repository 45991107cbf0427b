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

mod components;
mod embedded;
mod graph;

use super::{FileError, Item, Position, Rejection};
use components::{location, person};
use embedded::{html_to_text, xml_texts};
use graph::Graph;
use serde_json::{Map, Value, json};
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

#[cfg(test)]
mod tests {
    use super::*;

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
