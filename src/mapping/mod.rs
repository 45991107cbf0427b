//! The mapping engine: applies a declarative mapping file (`mappings/*.toml`) to parsed records
//! and produces canonical incidents. No agency code is ever written in Rust.
//!
//! A mapping is loaded and checked once (unknown targets, tables, formats and columns are errors
//! with file and line), bound to a file's header once, then applied per record.

mod compile;
pub mod datetime;
pub mod hl7path;
pub mod reuse;
pub mod spec;
pub mod target;
pub mod transform;
mod tzcache;
pub mod unmapped;

use crate::config::error::{ConfigError, ConfigErrors, line_of};
use crate::formats::{RecordView, Rejection};
use crate::model::{Category, Incident, Person, Role};
use datetime::TimeParser;
pub use datetime::TimeSettings;
pub use reuse::Scratch;
use serde_json::Value;
use spec::{FieldSpec, MappingSpec, TableSpec};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use target::{IncidentField, PersonField, ValueKind};
use transform::{CodeMap, Miss, Table, Transform};
use unmapped::{GapKey, describe_unmapped};

/// A compiled field: where its value comes from, how it is transformed, where it goes.
#[derive(Debug, Clone)]
struct Field<T> {
    target: T,
    name: String,
    /// Source ids (see [`Mapping::sources`]).
    sources: Vec<usize>,
    constant: Option<String>,
    sep: String,
    /// Take the first source with a value instead of joining them.
    coalesce: bool,
    transforms: Vec<Transform>,
    time: Option<TimeParser>,
    required: bool,
}

#[derive(Debug, Clone)]
struct PersonBlock {
    role: Role,
    /// A JSON pointer to an array: one person per element, sources relative to it.
    each: Option<String>,
    fields: Vec<Field<PersonField>>,
}

/// A source's value: one text, or several (a JSON array, an HL7 path with `*`).
enum Raw<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

fn scalar(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// When several codes of one record map to categories (NIBRS offenses), the first of these wins:
/// an exclusion (violent) before anything the program takes, the most urgent first.
pub const CATEGORY_PRECEDENCE: [Category; 8] = [
    Category::Violent,
    Category::Overdose,
    Category::SubstanceUse,
    Category::BehavioralHealth,
    Category::WelfareCheck,
    Category::DomesticNonviolent,
    Category::Other,
    Category::Unmapped,
];

/// What a field writes into: an incident or a person.
trait Target: Copy {
    type Into;
    fn set_value(
        self,
        into: &mut Self::Into,
        v: Cow<str>,
        t: &TimeParser,
        scratch: &mut Scratch,
    ) -> Result<(), String>;
    fn value_kind(self) -> ValueKind;
    /// Whether each value adds to a list.
    fn is_list(self) -> bool;
}

impl Target for IncidentField {
    type Into = Incident;
    fn set_value(
        self,
        into: &mut Incident,
        v: Cow<str>,
        t: &TimeParser,
        scratch: &mut Scratch,
    ) -> Result<(), String> {
        self.set(into, v, t, scratch)
    }
    fn value_kind(self) -> ValueKind {
        self.kind()
    }
    fn is_list(self) -> bool {
        matches!(self, IncidentField::Offense | IncidentField::Drug)
    }
}

impl Target for PersonField {
    type Into = Person;
    fn set_value(
        self,
        into: &mut Person,
        v: Cow<str>,
        t: &TimeParser,
        scratch: &mut Scratch,
    ) -> Result<(), String> {
        self.set(into, v, t, scratch)
    }
    fn value_kind(self) -> ValueKind {
        self.kind()
    }
    fn is_list(self) -> bool {
        matches!(
            self,
            PersonField::Phone | PersonField::Email | PersonField::Id(_)
        )
    }
}

#[derive(Debug, Clone)]
struct Example {
    name: String,
    line: usize,
    input: Value,
    expect: Option<serde_json::Map<String, Value>>,
    rejected: Option<String>,
}

/// A checked, compiled mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub path: PathBuf,
    fields: Vec<Field<IncidentField>>,
    persons: Vec<PersonBlock>,
    tables: Vec<Table>,
    /// Distinct source names (column names, JSON pointers or HL7 paths), by id.
    sources: Vec<String>,
    /// The HL7 path of each source written as one.
    hl7: Vec<Option<hl7path::Hl7Path>>,
    examples: Vec<Example>,
}

/// A code that had no entry in its table: a mapping gap the agency should close.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gap {
    pub table: String,
    /// The code as [`describe_unmapped`] gives it: the code itself when it is code-shaped, else
    /// its length and a keyed hash. Never a raw value that could identify.
    pub code: String,
}

/// The columns of one delimited file, resolved for this mapping's sources.
#[derive(Debug, Clone, Default)]
pub struct Binding {
    columns: Vec<Option<usize>>,
}

/// Context an adapter adds to every incident it produces.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub adapter: String,
    pub agency_ori: Option<String>,
    pub system: Option<String>,
    /// The agency's zone and ambiguous-time rule, when the adapter states them.
    pub time: TimeSettings,
}

impl Mapping {
    /// Loads and checks a mapping file; reports every problem found, each with file and line.
    pub fn load(path: &Path) -> Result<Mapping, ConfigErrors> {
        let (spec, text) = crate::config::error::load_toml::<MappingSpec>(path)?;
        Mapping::compile(path, &text, spec)
    }

    /// The source names (columns or JSON pointers) this mapping reads.
    pub fn source_names(&self) -> &[String] {
        &self.sources
    }

    /// Resolves column names against a delimited file's header. Names missing from the header
    /// are an error for the whole file: nothing is guessed.
    pub fn bind(&self, headers: &[String]) -> Result<Binding, String> {
        let mut missing = Vec::new();
        let columns = self
            .sources
            .iter()
            .map(|s| {
                let i = headers.iter().position(|h| h == s);
                if i.is_none() {
                    missing.push(format!("`{s}`"));
                }
                i
            })
            .collect();
        if missing.is_empty() {
            Ok(Binding { columns })
        } else {
            Err(format!(
                "the header lacks column(s) the mapping reads: {}",
                missing.join(", ")
            ))
        }
    }

    fn lookup<'a>(&'a self, rec: &RecordView<'a>, b: &Binding, id: usize) -> Option<Raw<'a>> {
        match rec {
            RecordView::Row(row) => b
                .columns
                .get(id)
                .copied()
                .flatten()
                .and_then(|i| row.get(i))
                .map(|v| Raw::One(Cow::Borrowed(v))),
            RecordView::Json(v) => {
                if let Some(p) = &self.hl7[id] {
                    let mut found = p.resolve(v);
                    return match found.len() {
                        0 => None,
                        1 => found.pop().map(|s| Raw::One(Cow::Borrowed(s))),
                        _ => Some(Raw::Many(found.into_iter().map(Cow::Borrowed).collect())),
                    };
                }
                let name = &self.sources[id];
                let found = if name.starts_with('/') {
                    v.pointer(name)
                } else {
                    v.get(name)
                };
                match found? {
                    Value::Array(items) => {
                        Some(Raw::Many(items.iter().filter_map(scalar).collect()))
                    }
                    other => scalar(other).map(Raw::One),
                }
            }
        }
    }

    /// The value(s) of a field before its transforms: a constant, one source, several sources
    /// joined, or the elements of a JSON array.
    fn raw<'a, T>(&'a self, f: &'a Field<T>, rec: &RecordView<'a>, b: &Binding) -> Raw<'a> {
        match &f.constant {
            Some(c) => Raw::One(Cow::Borrowed(c.as_str())),
            None if f.sources.len() == 1 => self
                .lookup(rec, b, f.sources[0])
                .unwrap_or(Raw::One(Cow::Borrowed(""))),
            None if f.coalesce => f
                .sources
                .iter()
                .find_map(|&id| match self.lookup(rec, b, id) {
                    Some(Raw::One(v)) if !v.trim().is_empty() => Some(Raw::One(v)),
                    Some(Raw::Many(v)) if !v.is_empty() => Some(Raw::Many(v)),
                    _ => None,
                })
                .unwrap_or(Raw::One(Cow::Borrowed(""))),
            None => {
                let mut s = String::new();
                for &id in &f.sources {
                    if let Some(Raw::One(part)) = self.lookup(rec, b, id) {
                        let part = part.trim();
                        if !part.is_empty() {
                            if !s.is_empty() {
                                s.push_str(&f.sep);
                            }
                            s.push_str(part);
                        }
                    }
                }
                Raw::One(Cow::Owned(s))
            }
        }
    }

    /// Runs a field's transforms on `v` in place (see [`Transform::apply`]).
    fn transform<'a, T>(
        &'a self,
        f: &'a Field<T>,
        v: &mut Cow<'a, str>,
        key: &GapKey,
        gaps: &mut Vec<Gap>,
        scratch: &mut Scratch,
    ) -> Result<(), Rejection> {
        // Every value is trimmed first, whatever the format: an export's `"Ann Arbor "` is Ann
        // Arbor, and a value of blanks is no value.
        transform::trim_in_place(v);
        for t in &f.transforms {
            match t.apply(v, &self.tables, scratch) {
                None => {}
                Some(Miss::Gap { table, code }) => gaps.push(Gap {
                    table: self.tables[table].name.clone(),
                    code: describe_unmapped(&code, key),
                }),
                Some(Miss::Reject { table, code }) => {
                    let reason = format!(
                        "code {} is not in table `{}`",
                        unmapped::shown(&describe_unmapped(&code, key)),
                        self.tables[table].name
                    );
                    return Err(Rejection::new("unmapped_code", reason).with_field(&f.name));
                }
            }
        }
        Ok(())
    }

    /// Evaluates one field and stores its value(s). A list target (phone, offense, ...) takes
    /// every element of an array source; `category` takes the weightiest of them (see
    /// [`CATEGORY_PRECEDENCE`]); any other target the first.
    #[allow(clippy::too_many_arguments)]
    fn apply_field<'a, T: Target>(
        &'a self,
        f: &'a Field<T>,
        rec: &RecordView<'a>,
        b: &Binding,
        key: &GapKey,
        gaps: &mut Vec<Gap>,
        zone: (Option<chrono_tz::Tz>, Option<datetime::AmbiguousTime>),
        into: &mut T::Into,
        scratch: &mut Scratch,
    ) -> Result<(), Rejection> {
        let parser = f.time.as_ref().expect("compiled with a time parser");
        // Only the time fields are given the adapter's zone; the others use their parser as
        // compiled, with no adjustment to work out.
        let time = if zone == (None, None) {
            Cow::Borrowed(parser)
        } else {
            parser.adjusted(zone.0, zone.1)
        };
        let time = &*time;
        let set = |into: &mut T::Into, v: Cow<str>, scratch: &mut Scratch| {
            f.target
                .set_value(into, v, time, scratch)
                .map_err(|e| set_error(&f.name, f.target.value_kind(), e))
        };
        // The common case, one column of a delimited row: its text goes through the transforms
        // borrowed from the row, with no `Raw` or list of values built for it.
        if let (RecordView::Row(row), None, &[id]) = (rec, &f.constant, f.sources.as_slice()) {
            let text = b
                .columns
                .get(id)
                .copied()
                .flatten()
                .and_then(|i| row.get(i));
            let mut v = Cow::Borrowed(text.unwrap_or(""));
            self.transform(f, &mut v, key, gaps, scratch)?;
            if v.is_empty() {
                return missing(f);
            }
            // Passed on rebuilt from its parts, not copied whole: the steps wrote it a word at a
            // time, and reading those words back as one 16-byte move stalled on every field.
            return match v {
                Cow::Borrowed(s) => set(into, Cow::Borrowed(s), scratch),
                Cow::Owned(s) => set(into, Cow::Owned(s), scratch),
            };
        }
        let mut values: Vec<Cow<str>> = Vec::new();
        match self.raw(f, rec, b) {
            Raw::One(mut v) => {
                self.transform(f, &mut v, key, gaps, scratch)?;
                if !v.is_empty() {
                    return set(into, v, scratch);
                }
            }
            Raw::Many(items) => {
                for mut v in items {
                    self.transform(f, &mut v, key, gaps, scratch)?;
                    if !v.is_empty() {
                        values.push(v);
                    }
                }
            }
        }
        if values.is_empty() {
            return missing(f);
        }
        if f.target.is_list() {
            for v in values {
                set(into, v, scratch)?;
            }
            return Ok(());
        }
        let pick = if f.target.value_kind() == ValueKind::Category {
            values
                .iter()
                .min_by_key(|v| {
                    CATEGORY_PRECEDENCE
                        .iter()
                        .position(|c| c.as_str() == v.trim())
                        .unwrap_or(usize::MAX)
                })
                .cloned()
        } else {
            values.into_iter().next()
        };
        match pick {
            Some(v) => set(into, v, scratch),
            None => Ok(()),
        }
    }

    /// Maps one record. `gaps` receives the codes that had no table entry, described under
    /// `key` (see [`unmapped`]). The incident's strings come from `scratch` when it holds
    /// buffers of incidents already delivered (see [`reuse`]).
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &self,
        prov: &Provenance,
        rec: &RecordView,
        b: &Binding,
        key: &GapKey,
        gaps: &mut Vec<Gap>,
        scratch: &mut Scratch,
    ) -> Result<Incident, Rejection> {
        let mut inc = Incident::new("");
        inc.source.adapter = scratch.copy(&prov.adapter);
        inc.source.agency_ori = prov.agency_ori.as_deref().map(|o| scratch.copy(o));
        inc.source.system = prov.system.as_deref().map(|s| scratch.copy(s));
        inc.persons = scratch.persons();
        // Times last: their zone may depend on the incident's ORI (`timezone_by_ori`).
        let is_time = |f: &&Field<IncidentField>| f.target.kind() == ValueKind::DateTime;
        for f in self.fields.iter().filter(|f| !is_time(f)) {
            self.apply_field(f, rec, b, key, gaps, (None, None), &mut inc, scratch)?;
        }
        let zone = (
            prov.time.zone_for(inc.source.agency_ori.as_deref()),
            prov.time.ambiguous,
        );
        for f in self.fields.iter().filter(is_time) {
            self.apply_field(f, rec, b, key, gaps, zone, &mut inc, scratch)?;
        }
        // Room for the fixed blocks' persons at once: a person is about 400 bytes, and a vector
        // grown by push starts at four of them, an allocation too large for glibc's per-thread
        // cache (`malloc_consolidate`, 1.5% of `normalize`'s profile, went with it).
        inc.persons
            .reserve_exact(self.persons.iter().filter(|p| p.each.is_none()).count());
        for p in &self.persons {
            // A person of a fixed block is emitted when anything is known of them; each
            // element of an `each` array is a person the source lists, known or not.
            let keep_empty = p.each.is_some();
            let mut one = |view: &RecordView, inc: &mut Incident| -> Result<(), Rejection> {
                let mut person = Person::new(p.role);
                for f in &p.fields {
                    let none = (None, None);
                    self.apply_field(f, view, b, key, gaps, none, &mut person, scratch)?;
                }
                if keep_empty || !person.is_empty() {
                    inc.persons.push(person);
                }
                Ok(())
            };
            match (&p.each, rec) {
                (None, _) => one(rec, &mut inc)?,
                (Some(ptr), RecordView::Json(v)) => {
                    if let Some(Value::Array(items)) = v.pointer(ptr) {
                        for item in items {
                            one(&RecordView::Json(item), &mut inc)?;
                        }
                    }
                }
                (Some(_), RecordView::Row(_)) => {}
            }
        }
        if transform::trim(&inc.incident_id).is_empty() {
            return Err(
                Rejection::new("missing_incident_id", "the incident id is empty")
                    .with_field("incident_id"),
            );
        }
        if inc.source.record_id.is_empty() {
            inc.source.record_id = scratch.copy(&inc.incident_id);
        }
        Ok(inc)
    }

    /// Runs the mapping's examples; each failure names the example's line.
    pub fn run_examples(
        &self,
        prov: &Provenance,
        rules: &crate::policy::ProgramRules,
    ) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let b = Binding::default();
        // An example states what the mapping does: in its own zone, whatever agency's adapter
        // uses it (a Hawaii adapter must not fail the shipped NIBRS examples).
        let prov = &Provenance {
            time: TimeSettings::default(),
            ..prov.clone()
        };
        // Examples hold invented values; their gaps are not kept.
        let key = GapKey::ephemeral();
        for ex in &self.examples {
            let err = |msg: String| {
                ConfigError::new(&self.path, msg)
                    .at(ex.line)
                    .field(format!("example `{}`", ex.name))
            };
            let mut gaps = Vec::new();
            let out = self.apply(
                prov,
                &RecordView::Json(&ex.input),
                &b,
                &key,
                &mut gaps,
                &mut Scratch::default(),
            );
            match (out, &ex.expect, &ex.rejected) {
                (Ok(mut inc), Some(expect), _) => {
                    rules.apply(&mut inc);
                    let got = serde_json::to_value(&inc).unwrap_or(Value::Null);
                    for (k, want) in expect {
                        let have = got.get(k).unwrap_or(&Value::Null);
                        if have != want {
                            errors.push(err(format!("`{k}`: expected {want}, got {have}")));
                        }
                    }
                }
                (Ok(_), None, Some(kind)) => errors.push(err(format!(
                    "expected a rejection ({kind}), got an incident"
                ))),
                (Err(r), _, Some(kind)) if r.kind == kind => {}
                (Err(r), _, _) => errors.push(err(format!("rejected ({}): {}", r.kind, r.reason))),
                (Ok(_), None, None) => {}
            }
        }
        errors
    }

    pub fn examples_len(&self) -> usize {
        self.examples.len()
    }

    /// Code tables by name (for listing mapping gaps).
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(|t| t.name.as_str())
    }
}

/// A field with no value: a rejection when it is required, else nothing to store.
fn missing<T>(f: &Field<T>) -> Result<(), Rejection> {
    if f.required {
        return Err(Rejection::new(
            "missing_required",
            format!("required field `{}` is empty", f.name),
        )
        .with_field(&f.name));
    }
    Ok(())
}

fn set_error(name: &str, kind: ValueKind, e: String) -> Rejection {
    let k = match kind {
        // A time in the spring gap, or one in the repeated hour under `ambiguous_time = "reject"`.
        ValueKind::DateTime if e.contains("does not exist") || e.contains("happens twice") => {
            "ambiguous_local_time"
        }
        ValueKind::DateTime | ValueKind::Date => "bad_date",
        ValueKind::Number => "bad_number",
        ValueKind::Bool => "bad_boolean",
        ValueKind::Category => "bad_category",
        ValueKind::Action => "bad_action",
        ValueKind::Text => "bad_value",
    };
    Rejection::new(k, e).with_field(name)
}
