//! Compiled transform steps and code tables.

use super::spec::{Missing, TransformSpec};
use regex::Regex;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub enum Transform {
    Trim,
    Upper,
    Lower,
    Title,
    Digits,
    Split { sep: String, index: i64 },
    Regex { re: Regex, group: usize },
    Replace { re: Regex, with: String },
    Default(String),
    Table { table: usize, missing: Missing },
}

/// A code table: code → value.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub map: HashMap<String, String>,
    pub ignore_case: bool,
    pub partial: bool,
}

impl Table {
    pub fn get(&self, code: &str) -> Option<&str> {
        if self.ignore_case {
            self.map.get(&code.to_ascii_uppercase()).map(String::as_str)
        } else {
            self.map.get(code).map(String::as_str)
        }
    }
}

/// What a step produced: a value, or a gap to report (a code missing from a table).
pub enum Step {
    Value(String),
    Gap { table: usize, code: String, value: String },
    Reject(String),
}

impl Transform {
    /// Compiles one step; `table_id` resolves table names.
    pub fn compile(
        spec: &TransformSpec,
        table_id: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<Transform, String> {
        Ok(match spec {
            TransformSpec::Trim => Transform::Trim,
            TransformSpec::Upper => Transform::Upper,
            TransformSpec::Lower => Transform::Lower,
            TransformSpec::Title => Transform::Title,
            TransformSpec::Digits => Transform::Digits,
            TransformSpec::Split { sep, index } => {
                if sep.is_empty() {
                    return Err("split needs a non-empty `sep`".into());
                }
                Transform::Split {
                    sep: sep.clone(),
                    index: *index,
                }
            }
            TransformSpec::Regex { pattern, group } => {
                let re = Regex::new(pattern).map_err(|e| format!("bad regex: {e}"))?;
                if *group >= re.captures_len() {
                    return Err(format!(
                        "regex has {} capture group(s); group {group} does not exist",
                        re.captures_len() - 1
                    ));
                }
                Transform::Regex { re, group: *group }
            }
            TransformSpec::Replace { pattern, with } => Transform::Replace {
                re: Regex::new(pattern).map_err(|e| format!("bad regex: {e}"))?,
                with: with.clone(),
            },
            TransformSpec::Default { value } => Transform::Default(value.clone()),
            TransformSpec::Table { table, missing } => Transform::Table {
                table: table_id(table).ok_or_else(|| format!("no table named `{table}` in [tables]"))?,
                missing: *missing,
            },
        })
    }

    pub fn apply(&self, v: String, tables: &[Table]) -> Step {
        Step::Value(match self {
            Transform::Trim => {
                let t = v.trim();
                if t.len() == v.len() { v } else { t.to_owned() }
            }
            Transform::Upper => v.to_uppercase(),
            Transform::Lower => v.to_lowercase(),
            Transform::Title => title(&v),
            Transform::Digits => v.chars().filter(char::is_ascii_digit).collect(),
            Transform::Split { sep, index } => {
                let parts: Vec<&str> = v.split(sep.as_str()).collect();
                let i = if *index < 0 {
                    parts.len() as i64 + index
                } else {
                    *index
                };
                usize::try_from(i)
                    .ok()
                    .and_then(|i| parts.get(i))
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            }
            Transform::Regex { re, group } => re
                .captures(&v)
                .and_then(|c| c.get(*group))
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            Transform::Replace { re, with } => re.replace_all(&v, with.as_str()).into_owned(),
            Transform::Default(d) => {
                if v.is_empty() {
                    d.clone()
                } else {
                    v
                }
            }
            Transform::Table { table, missing } => {
                if v.is_empty() {
                    return Step::Value(v);
                }
                let t = &tables[*table];
                match t.get(&v) {
                    Some(found) => found.to_owned(),
                    None => {
                        if t.partial {
                            return Step::Value(match missing {
                                Missing::Keep => v,
                                _ => String::new(),
                            });
                        }
                        return match missing {
                            Missing::Reject => Step::Reject(format!(
                                "code `{v}` is not in table `{}`",
                                t.name
                            )),
                            Missing::Empty => Step::Gap {
                                table: *table,
                                code: v,
                                value: String::new(),
                            },
                            Missing::Keep => Step::Gap {
                                table: *table,
                                value: v.clone(),
                                code: v,
                            },
                        };
                    }
                }
            }
        })
    }
}

fn title(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut start = true;
    for c in v.chars() {
        if c.is_alphanumeric() || c == '\'' {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: Transform, v: &str) -> String {
        match t.apply(v.to_owned(), &[]) {
            Step::Value(s) => s,
            _ => panic!("not a value"),
        }
    }

    #[test]
    fn steps() {
        assert_eq!(run(Transform::Trim, "  a b "), "a b");
        assert_eq!(run(Transform::Title, "o'BRIEN-SMITH jr"), "O'brien-Smith Jr");
        assert_eq!(run(Transform::Digits, "(304) 555-0100"), "3045550100");
        let split = |index| Transform::Split {
            sep: ",".into(),
            index,
        };
        assert_eq!(run(split(1), "a,b,c"), "b");
        assert_eq!(run(split(-1), "a,b,c"), "c");
        assert_eq!(run(split(5), "a,b,c"), "");
        let re = Transform::Regex {
            re: Regex::new(r"^(\d+)-").unwrap(),
            group: 1,
        };
        assert_eq!(run(re.clone(), "46A - CIT"), "");
        assert_eq!(run(re, "46-CIT"), "46");
        assert_eq!(run(Transform::Default("x".into()), ""), "x");
    }
}
