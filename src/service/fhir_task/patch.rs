//! The subset of JSON Patch (RFC 6902) the FHIR channel takes: `add`, `replace` and `remove` of
//! `/status`, `/statusReason` and `/businessStatus` (and what is under the last two), and
//! `test` of any path. Everything else (`move`, `copy`, other elements) is refused before the
//! Task is touched: a provider reports a status and its codes, nothing more. Pure.

use super::Fail;
use axum::http::StatusCode;
use serde_json::Value;

/// The elements a patch may change.
const CHANGEABLE: [&str; 3] = ["status", "statusReason", "businessStatus"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Replace,
    Remove,
    Test,
}

/// One checked operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    kind: Kind,
    /// The path's reference tokens, unescaped (`~1` is `/`, `~0` is `~`).
    path: Vec<String>,
    value: Value,
}

fn unsupported() -> Fail {
    Fail::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "not-supported",
        "a Task patch may add, replace or remove /status, /statusReason and /businessStatus, and test any path; nothing else",
    )
}

/// Reads a JSON Patch document: 400 when it is not one, 422 for an operation outside the subset.
pub fn ops(doc: &Value) -> Result<Vec<Op>, Fail> {
    let Value::Array(list) = doc else {
        return Err(Fail::invalid(
            "a JSON Patch is a list of operations (RFC 6902)",
        ));
    };
    if list.is_empty() {
        return Err(Fail::invalid("the patch has no operation"));
    }
    list.iter().map(op).collect()
}

fn op(v: &Value) -> Result<Op, Fail> {
    let malformed = || Fail::invalid("a patch operation is an object with op and path (RFC 6902)");
    let name = v.get("op").and_then(Value::as_str).ok_or_else(malformed)?;
    let path = v
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(malformed)?;
    let kind = match name {
        "add" => Kind::Add,
        "replace" => Kind::Replace,
        "remove" => Kind::Remove,
        "test" => Kind::Test,
        "move" | "copy" => return Err(unsupported()),
        _ => {
            return Err(Fail::invalid(
                "a patch operation's op is not one of RFC 6902's",
            ));
        }
    };
    let path = pointer(path)?;
    let value = match (kind, v.get("value")) {
        (Kind::Remove, _) => Value::Null,
        (_, Some(x)) => x.clone(),
        (_, None) => return Err(Fail::invalid("add, replace and test need a value")),
    };
    if kind != Kind::Test {
        let Some(first) = path.first() else {
            return Err(unsupported()); // the whole Task
        };
        if !CHANGEABLE.contains(&first.as_str()) {
            return Err(unsupported());
        }
        if kind == Kind::Remove && path.len() == 1 && first == "status" {
            return Err(Fail::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "business-rule",
                "a Task has a status: replace it, do not remove it",
            ));
        }
    }
    Ok(Op { kind, path, value })
}

/// A JSON Pointer (RFC 6901) into its reference tokens.
fn pointer(p: &str) -> Result<Vec<String>, Fail> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err(Fail::invalid(
            "a patch path is a JSON Pointer, starting with /",
        ));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn walk<'a>(mut v: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    for t in tokens {
        v = match v {
            Value::Object(m) => m.get_mut(t)?,
            Value::Array(a) => a.get_mut(index(t)?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// An array index as RFC 6901 spells it: digits, no leading zero.
fn index(t: &str) -> Option<usize> {
    (t == "0" || (!t.starts_with('0') && t.bytes().all(|b| b.is_ascii_digit())))
        .then(|| t.parse().ok())
        .flatten()
}

fn cannot() -> Fail {
    Fail::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "processing",
        "the patch does not apply to the Task as it stands (a path that is not there)",
    )
}

/// Applies `ops` to `task`, all or nothing (the caller drops `task` on an error).
pub fn apply(task: &mut Value, ops: &[Op]) -> Result<(), Fail> {
    for op in ops {
        if op.kind == Kind::Test {
            if walk(task, &op.path).map(|v| &*v) != Some(&op.value) {
                return Err(Fail::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "a test operation failed: the Task is not as the patch expected",
                ));
            }
            continue;
        }
        // Every other operation has a non-empty path (checked by `ops`).
        let (last, parent) = op.path.split_last().ok_or_else(cannot)?;
        let parent = walk(task, parent).ok_or_else(cannot)?;
        match (op.kind, parent) {
            (Kind::Add, Value::Object(m)) => {
                m.insert(last.clone(), op.value.clone());
            }
            (Kind::Replace, Value::Object(m)) if m.contains_key(last) => {
                m.insert(last.clone(), op.value.clone());
            }
            (Kind::Remove, Value::Object(m)) if m.contains_key(last) => {
                m.remove(last);
            }
            (Kind::Add, Value::Array(a)) => {
                let i = if last == "-" {
                    a.len()
                } else {
                    index(last).filter(|i| *i <= a.len()).ok_or_else(cannot)?
                };
                a.insert(i, op.value.clone());
            }
            (Kind::Replace, Value::Array(a)) => {
                let slot = index(last).and_then(|i| a.get_mut(i)).ok_or_else(cannot)?;
                *slot = op.value.clone();
            }
            (Kind::Remove, Value::Array(a)) => {
                let i = index(last).filter(|i| *i < a.len()).ok_or_else(cannot)?;
                a.remove(i);
            }
            _ => return Err(cannot()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_subset_applies_and_the_rest_is_refused() {
        let mut t =
            json!({"resourceType": "Task", "status": "accepted", "meta": {"versionId": "2"}});
        let p = ops(&json!([
            {"op": "test", "path": "/meta/versionId", "value": "2"},
            {"op": "replace", "path": "/status", "value": "completed"},
            {"op": "add", "path": "/statusReason", "value": {"coding": [{"code": "done"}]}},
            {"op": "add", "path": "/statusReason/coding/-", "value": {"code": "x"}},
            {"op": "remove", "path": "/statusReason/coding/1"},
        ]))
        .unwrap();
        apply(&mut t, &p).unwrap();
        assert_eq!(t["status"], "completed");
        assert_eq!(t["statusReason"], json!({"coding": [{"code": "done"}]}));

        for refused in [
            json!([{"op": "replace", "path": "/for", "value": {}}]),
            json!([{"op": "move", "from": "/status", "path": "/businessStatus"}]),
            json!([{"op": "replace", "path": "", "value": {}}]),
            json!([{"op": "remove", "path": "/status"}]),
        ] {
            assert_eq!(
                ops(&refused).unwrap_err().status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{refused}"
            );
        }
        for malformed in [
            json!({}),
            json!([]),
            json!([{"op": "replace"}]),
            json!([{"op": "frob", "path": "/status"}]),
        ] {
            assert_eq!(ops(&malformed).unwrap_err().status, StatusCode::BAD_REQUEST);
        }
        let stale = ops(&json!([{"op": "test", "path": "/meta/versionId", "value": "1"}])).unwrap();
        assert_eq!(
            apply(&mut t, &stale).unwrap_err().status,
            StatusCode::CONFLICT
        );
        let missing =
            ops(&json!([{"op": "replace", "path": "/businessStatus", "value": {}}])).unwrap();
        assert_eq!(
            apply(&mut t, &missing).unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
