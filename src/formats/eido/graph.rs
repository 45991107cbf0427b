//! The EIDO component graph. EIDO components point at each other with `$ref` (a person's
//! callback, an incident's location); this resolves those links once per document, so the reader
//! follows a reference without searching and refuses a dangling one or a cycle instead of looping.

use super::violation;
use crate::formats::Rejection;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// The component graph: every object with an `$id`, by id.
pub(super) struct Graph<'a> {
    by_id: HashMap<&'a str, &'a Value>,
}

impl<'a> Graph<'a> {
    pub(super) fn new(doc: &'a Value) -> Result<Self, Rejection> {
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

    pub(super) fn refs(&self, v: &'a Value) -> Result<Vec<&'a Value>, Rejection> {
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
