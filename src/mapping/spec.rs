//! The mapping file as written (`mappings/*.toml`), before it is checked and compiled.

use crate::model::Role;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub defaults: Defaults,
    /// Code tables, by name.
    #[serde(default)]
    pub tables: BTreeMap<String, Spanned<TableSpec>>,
    /// Incident fields.
    #[serde(default, rename = "field")]
    pub fields: Vec<FieldSpec>,
    /// Persons, each with its own fields.
    #[serde(default, rename = "person")]
    pub persons: Vec<PersonSpec>,
    /// Example input rows with the canonical JSON they must produce; `check` runs them.
    #[serde(default, rename = "example")]
    pub examples: Vec<Spanned<ExampleSpec>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// IANA zone for local times (default America/New_York); an adapter's `[source] timezone`
    /// replaces it.
    pub timezone: Option<Spanned<String>>,
    /// What a local time that happens twice becomes (default `earlier`); an adapter's
    /// `[source] ambiguous_time` replaces it.
    pub ambiguous_time: Option<super::datetime::AmbiguousTime>,
    /// Formats tried in order for date-time targets (`times.*`).
    pub datetime_formats: Option<Vec<String>>,
    /// Formats tried in order for date targets (`dob`).
    pub date_formats: Option<Vec<String>>,
}

/// A code table: inline `entries`, or a CSV `file` (with a header row) and its columns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    #[serde(default)]
    pub entries: BTreeMap<String, String>,
    /// A CSV lookup file, relative to the mapping file.
    pub file: Option<String>,
    /// Column holding the code (default: the first).
    pub key: Option<String>,
    /// Column holding the value (default: the second).
    pub value: Option<String>,
    /// Match codes ignoring ASCII case (default false).
    #[serde(default)]
    pub ignore_case: bool,
    /// The table lists only some codes on purpose (e.g. the call types that involve a weapon):
    /// a code missing from it is not a mapping gap.
    #[serde(default)]
    pub partial: bool,
}

/// One canonical field and where its value comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// A canonical field name (see docs/mapping.md).
    pub target: Spanned<String>,
    /// A column name, a JSON pointer (`/a/b`), or a list of them joined by `sep`.
    pub source: Option<SourceSpec>,
    /// A constant instead of a source.
    pub value: Option<String>,
    /// Joins several sources (default one space); empty parts are skipped.
    pub sep: Option<String>,
    /// Takes the first of several sources that has a value, instead of joining them.
    #[serde(default)]
    pub coalesce: bool,
    #[serde(default)]
    pub transforms: Vec<TransformSpec>,
    /// Date/time formats for this field, overriding the defaults.
    pub formats: Option<Vec<String>>,
    /// Time zone for this field (a column known to be UTC, say), overriding the default and
    /// the adapter's zone.
    pub timezone: Option<String>,
    /// Reject the record when this field ends up empty.
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SourceSpec {
    One(String),
    Many(Vec<String>),
}

impl SourceSpec {
    pub fn names(&self) -> Vec<String> {
        match self {
            SourceSpec::One(s) => vec![s.clone()],
            SourceSpec::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonSpec {
    pub role: Role,
    /// A JSON pointer to an array: one person per element, with sources relative to it.
    pub each: Option<String>,
    #[serde(default, rename = "field")]
    pub fields: Vec<FieldSpec>,
}

/// One transform step, written `{ op = "...", ... }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformSpec {
    Trim,
    Upper,
    Lower,
    /// Capitalise each word.
    Title,
    /// Keep only the digits (phones, SSNs).
    Digits,
    /// Split on `sep`, keep the part at `index` (0-based; negative counts from the end).
    Split {
        sep: String,
        index: i64,
    },
    /// Keep capture `group` (default 1) of the first match; no match gives an empty value.
    Regex {
        pattern: String,
        #[serde(default = "one")]
        group: usize,
    },
    /// Replace every match of `pattern` with `with` (`$1` refers to captures).
    Replace {
        pattern: String,
        with: String,
    },
    /// Use `value` when the value is empty.
    Default {
        value: String,
    },
    /// Look the value up in a code table.
    Table {
        table: String,
        /// What a code missing from the table gives: `empty` (default; counted as a mapping
        /// gap), `keep` (the code itself, still counted) or `reject` (the record).
        #[serde(default)]
        missing: Missing,
    },
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    #[default]
    Empty,
    Keep,
    Reject,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleSpec {
    pub name: Option<String>,
    /// Column → value for delimited sources; any JSON object (as TOML) for JSON sources.
    pub input: toml::Table,
    /// Top-level canonical keys the output must equal (keys not listed are not compared).
    pub expect: Option<toml::Table>,
    /// Or: the record must be rejected with this `kind`.
    pub rejected: Option<String>,
}
