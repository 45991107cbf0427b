//! Adapters (`adapters/*.toml`): one per supported export = transport + format + mapping.
//! Agency IT copies one and edits it; no Rust code is involved.

use super::error::{ConfigError, ConfigErrors, line_of, load_toml};
use crate::formats::delimited::{DelimitedOptions, default_max_record_bytes};
use crate::mapping::datetime::{AmbiguousTime, parse_zone};
use crate::mapping::{Mapping, Provenance, TimeSettings};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterSpec {
    pub description: Option<String>,
    /// The mapping file, relative to this adapter file.
    pub mapping: String,
    #[serde(default)]
    pub source: SourceSpec,
    pub format: FormatSpec,
    #[serde(default)]
    pub transport: TransportSpec,
}

/// Facts about the sender stamped on every incident, and the sender's clock.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub agency_ori: Option<String>,
    pub system: Option<String>,
    /// The IANA zone of the agency's local times. It replaces the mapping's `[defaults]
    /// timezone` (a field's own `timezone` stays): a mapping of a standard (NIBRS) serves
    /// agencies in every zone.
    pub timezone: Option<Spanned<String>>,
    /// Zones by agency ORI, for a file that carries several agencies (a state's submission):
    /// the incident's `source.agency_ori` picks one; others get `timezone`.
    #[serde(default)]
    pub timezone_by_ori: BTreeMap<String, Spanned<String>>,
    /// What a local time that happens twice becomes: `earlier`, `later` or `reject`; replaces
    /// the mapping's `[defaults] ambiguous_time` (default `earlier`).
    pub ambiguous_time: Option<AmbiguousTime>,
}

impl SourceSpec {
    /// The time settings, or the problems with them, each with its line in `text`.
    fn time(&self, path: &Path, text: &str) -> Result<TimeSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut zone = |z: &Spanned<String>, field: String| match parse_zone(z.get_ref()) {
            Ok(tz) => Some(tz),
            Err(e) => {
                errors.push(
                    ConfigError::new(path, e)
                        .at(line_of(text, z.span().start))
                        .field(field),
                );
                None
            }
        };
        let settings = TimeSettings {
            zone: self
                .timezone
                .as_ref()
                .and_then(|z| zone(z, "source.timezone".into())),
            by_ori: self
                .timezone_by_ori
                .iter()
                .filter_map(|(ori, z)| {
                    Some((
                        ori.trim().to_owned(),
                        zone(z, format!("source.timezone_by_ori.{ori}"))?,
                    ))
                })
                .collect(),
            ambiguous: self.ambiguous_time,
        };
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FormatSpec {
    /// Delimited text; `delimiter` defaults to `,`.
    Csv(DelimitedSpec),
    /// Delimited text; `delimiter` defaults to a tab.
    Tsv(DelimitedSpec),
    /// Delimited text; `delimiter` defaults to `|`.
    Psv(DelimitedSpec),
    /// One JSON object per line.
    Ndjson {
        #[serde(default = "default_max_record_bytes")]
        max_record_bytes: usize,
    },
    /// A JSON document: one object, or an array of objects; a record longer than
    /// `max_record_bytes` is rejected, never held in memory, and ends the document.
    Json {
        #[serde(default = "default_max_record_bytes")]
        max_record_bytes: usize,
    },
    /// FBI NIBRS XML (IEPD 2019.1 or 4.2), streamed report by report; a report longer than
    /// `max_record_bytes` is rejected and skipped, never held in memory.
    NibrsXml {
        #[serde(default = "default_max_record_bytes")]
        max_record_bytes: usize,
    },
    /// FBI NIBRS fixed-width flat file.
    NibrsFlat {},
    /// NENA EIDO JSON (one document, or an array of them).
    NenaEido {},
    /// HL7 v2 messages (one or several per file; CR, LF or CRLF).
    Hl7v2 {
        /// MSH-11 processing IDs taken as incidents; others are quarantined as
        /// `training_message`. Default `["P"]` (production).
        #[serde(default = "crate::formats::hl7::default_processing_ids")]
        processing_ids: Vec<String>,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelimitedSpec {
    pub delimiter: Option<char>,
    pub quote: Option<char>,
    pub header: Option<bool>,
    pub columns: Option<Vec<String>>,
    pub max_record_bytes: Option<usize>,
}

/// A format ready for a reader.
#[derive(Debug, Clone)]
pub enum Format {
    Delimited(DelimitedOptions),
    Ndjson { max_record_bytes: usize },
    Json { max_record_bytes: usize },
    NibrsXml { max_record_bytes: usize },
    NibrsFlat,
    NenaEido,
    Hl7v2 { processing_ids: Vec<String> },
}

impl FormatSpec {
    pub fn resolve(&self) -> Result<Format, String> {
        let delimited = |d: &DelimitedSpec, delimiter: char| {
            let o = DelimitedOptions {
                delimiter: d.delimiter.unwrap_or(delimiter),
                quote: d.quote.unwrap_or('"'),
                header: d.header.unwrap_or(true),
                columns: d.columns.clone(),
                max_record_bytes: d.max_record_bytes.unwrap_or_else(default_max_record_bytes),
            };
            o.validate().map(|()| Format::Delimited(o))
        };
        match self {
            FormatSpec::Csv(d) => delimited(d, ','),
            FormatSpec::Tsv(d) => delimited(d, '\t'),
            FormatSpec::Psv(d) => delimited(d, '|'),
            FormatSpec::Ndjson { max_record_bytes } => Ok(Format::Ndjson {
                max_record_bytes: *max_record_bytes,
            }),
            FormatSpec::Json { max_record_bytes } => Ok(Format::Json {
                max_record_bytes: *max_record_bytes,
            }),
            FormatSpec::NibrsXml { max_record_bytes } => Ok(Format::NibrsXml {
                max_record_bytes: *max_record_bytes,
            }),
            FormatSpec::NibrsFlat {} => Ok(Format::NibrsFlat),
            FormatSpec::NenaEido {} => Ok(Format::NenaEido),
            FormatSpec::Hl7v2 { processing_ids } => {
                if processing_ids.is_empty()
                    || processing_ids
                        .iter()
                        .any(|p| p.trim().is_empty() || p.contains(char::is_whitespace))
                {
                    return Err(
                        "hl7v2 `processing_ids` must list MSH-11 codes such as \"P\", \"T\", \"D\""
                            .into(),
                    );
                }
                Ok(Format::Hl7v2 {
                    processing_ids: processing_ids.clone(),
                })
            }
        }
    }
}

/// How files reach the adapter: dropped in a folder the gateway watches (the folder itself is
/// named per site in gateway.toml), or given on the command line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportSpec {
    /// File names to read, a glob with `*` and `?` (default `*`).
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// What to do with a file once fully read: `keep` (default: the export is never touched)
    /// or `move` it into `move_to`.
    #[serde(default)]
    pub after: After,
    /// Folder (relative to the drop folder) that read files move to with `after = "move"`.
    #[serde(default = "default_move_to")]
    pub move_to: String,
}

fn default_pattern() -> String {
    "*".into()
}
fn default_move_to() -> String {
    "processed".into()
}

impl Default for TransportSpec {
    fn default() -> Self {
        TransportSpec {
            pattern: default_pattern(),
            after: After::Keep,
            move_to: default_move_to(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum After {
    #[default]
    Keep,
    Move,
}

/// A loaded, checked adapter.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub name: String,
    pub path: PathBuf,
    pub description: Option<String>,
    pub format: Format,
    pub mapping: Mapping,
    pub provenance: Provenance,
    pub transport: TransportSpec,
}

impl Adapter {
    /// Loads an adapter file and its mapping; every problem found is reported.
    pub fn load(path: &Path) -> Result<Adapter, ConfigErrors> {
        let (spec, text) = load_toml::<AdapterSpec>(path)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut errors = Vec::new();
        let format = spec.format.resolve().map_err(|e| {
            errors.push(ConfigError::new(path, e).field("format"));
        });
        if spec.transport.pattern.is_empty() {
            errors.push(ConfigError::new(path, "must not be empty").field("transport.pattern"));
        }
        let time = spec.source.time(path, &text).map_err(|e| errors.extend(e));
        let base = path.parent().unwrap_or(Path::new("."));
        let mapping = Mapping::load(&base.join(&spec.mapping)).map_err(|e| errors.extend(e.0));
        match (format, mapping, time) {
            (Ok(format), Ok(mapping), Ok(time)) if errors.is_empty() => Ok(Adapter {
                provenance: Provenance {
                    adapter: name.clone(),
                    agency_ori: spec.source.agency_ori,
                    system: spec.source.system,
                    time,
                },
                name,
                path: path.to_owned(),
                description: spec.description,
                format,
                mapping,
                transport: spec.transport,
            }),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// Finds an adapter by name in `dirs` (as `NAME.toml`), or takes `name` as a path.
    pub fn resolve(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, String> {
        let p = Path::new(name);
        if name.ends_with(".toml") || name.contains('/') || name.contains('\\') {
            return if p.is_file() {
                Ok(p.to_owned())
            } else {
                Err(format!("no adapter file {name}"))
            };
        }
        for d in dirs {
            let candidate = d.join(format!("{name}.toml"));
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        Err(format!(
            "no adapter named `{name}` in {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// Matches a file name against a glob of `*` and `?`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("*.csv", "calls_2023.csv"));
        assert!(!glob_match("*.csv", "calls.csv.part"));
        assert!(glob_match("cfs_??.txt", "cfs_01.txt"));
        assert!(glob_match("*", "x"));
    }
}
