//! gateway.toml: where the store lives, the program's eligibility rules, and the pipelines
//! (an adapter reading a drop folder). Relative paths are relative to the config file.

use super::adapter::{Adapter, After};
pub use super::delivery::{Delivery, DeliveryKind, HttpDelivery, MllpTlsSpec};
use super::destination::{DestinationSpec, Keys, KeysSpec, load_key};
use super::error::{ConfigError, ConfigErrors, load_toml};
use crate::model::Prss;
use crate::policy::ProgramRules;
use crate::policy::disclose::Destination;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySpec {
    #[serde(default)]
    pub store: StoreSpec,
    /// Where adapters are looked up by name (default `adapters`).
    pub adapters_dir: Option<String>,
    #[serde(default)]
    pub program: ProgramRules,
    #[serde(default, rename = "pipeline")]
    pub pipelines: Vec<PipelineSpec>,
    #[serde(default, rename = "destination")]
    pub destinations: Vec<DestinationSpec>,
    /// The PRSS roster: certified peers (dates as "YYYY-MM-DD" strings).
    #[serde(default, rename = "prss")]
    pub roster: Vec<Prss>,
    #[serde(default)]
    pub keys: KeysSpec,
    /// The service's HTTPS API (`run` in watch mode, `demo --serve`).
    pub server: Option<super::server::ServerSpec>,
    /// Who may call the API.
    #[serde(default, rename = "client")]
    pub clients: Vec<super::server::ClientSpec>,
    #[serde(default)]
    pub report: ReportSpec,
    /// The PRSS's organization's webhook for overdue referrals (docs/closed-loop.md).
    pub followup: Option<super::followup::FollowupSpec>,
}

/// `[report]`: the program report's suppression rule (see docs/reporting.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// Counts from 1 to `min_cell` are suppressed, and the counts that would give them back.
    /// Default 10 (the CMS cell size suppression policy); at least 1.
    #[serde(default = "default_min_cell")]
    pub min_cell: u64,
    /// Months of report facts kept (counted back from the current month); older ones are
    /// removed at each `run` pass. Default 27: a report a year back still has its 12 months and
    /// their 90 days of repeat contacts. At least 15 (last month's report, whole).
    #[serde(default = "default_keep_months")]
    pub keep_months: u32,
}

fn default_keep_months() -> u32 {
    27
}

fn default_min_cell() -> u64 {
    crate::report::DEFAULT_MIN_CELL
}

impl Default for ReportSpec {
    fn default() -> Self {
        ReportSpec {
            min_cell: default_min_cell(),
            keep_months: default_keep_months(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    #[serde(default = "default_store")]
    pub path: String,
    /// Days a staged incident is kept after its disclosure decisions (waiting for a PRSS's
    /// engagement to make a referral), then removed. Default 30.
    #[serde(default = "default_retention_days")]
    pub incident_retention_days: u32,
}

fn default_retention_days() -> u32 {
    30
}

fn default_store() -> String {
    "pnp-gateway.db".into()
}

impl Default for StoreSpec {
    fn default() -> Self {
        StoreSpec {
            path: default_store(),
            incident_retention_days: default_retention_days(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// The pipeline's id in the API (`/v1/pipelines/{id}/exports`, scope `push:{id}`); by
    /// default its adapter's name.
    pub id: Option<String>,
    /// An adapter name (looked up in `adapters_dir`) or a path to an adapter file.
    pub adapter: String,
    /// The drop folder the agency's CAD/RMS writes exports into.
    pub folder: String,
    /// Overrides the adapter's `transport.pattern`.
    pub pattern: Option<String>,
    /// Overrides the adapter's `transport.after`.
    pub after: Option<After>,
    /// A live source besides the drop folder (docs/sources.md).
    pub source: Option<super::source::SourceSpec>,
}

/// A loaded, checked gateway configuration.
#[derive(Debug)]
pub struct Gateway {
    pub path: PathBuf,
    pub store_path: PathBuf,
    pub incident_retention_days: u32,
    pub adapters_dir: PathBuf,
    pub program: ProgramRules,
    pub pipelines: Vec<Pipeline>,
    pub destinations: Vec<Destination>,
    pub roster: Vec<Prss>,
    /// The program report's threshold: counts from 1 to it are suppressed (`[report]`).
    pub report_min_cell: u64,
    /// Months of the report's facts kept (`[report] keep_months`).
    pub report_keep_months: u32,
    pub vault_key_file: Option<PathBuf>,
    pub audit_key_file: Option<PathBuf>,
    pub outbox_key_file: Option<PathBuf>,
    /// How each delivering destination is reached, by destination id.
    pub deliveries: std::collections::BTreeMap<String, Delivery>,
    /// What `check` warns about: allowed, but probably not meant (file, line, destination).
    pub warnings: Vec<ConfigError>,
    /// `[server]`, checked.
    pub server: Option<super::server::Server>,
    /// `[[client]]`s, checked.
    pub clients: Vec<super::server::Client>,
}

#[derive(Debug)]
pub struct Pipeline {
    /// Its id in the API: `[[pipeline]] id`, by default the adapter's name.
    pub id: String,
    pub adapter: Adapter,
    pub folder: PathBuf,
    pub pattern: String,
    pub after: After,
    /// The live source, paths resolved, when there is one.
    pub source: Option<super::source::SourceSpec>,
}

/// A Safe Harbor and a limited-data-set destination in one link group share tokens: whoever
/// holds both joins them and gets exact dates, ZIP5 and city back for the Safe Harbor rows.
fn relinks(earlier: &[DestinationSpec], d: &DestinationSpec) -> Option<String> {
    use crate::policy::profile::ProfileKind::{LimitedDataSet, SafeHarbor};
    let g = d.link_group.as_ref()?;
    let other = earlier.iter().find(|e| {
        e.link_group.as_ref() == Some(g)
            && matches!(
                (e.profile, d.profile),
                (SafeHarbor, LimitedDataSet) | (LimitedDataSet, SafeHarbor)
            )
    })?;
    Some(format!(
        "`{}` ({}) shares link_group `{g}` with `{}` ({}): whoever holds both joins their rows on the tokens and gets exact dates, ZIP5 and city back for the Safe Harbor ones",
        d.id,
        d.profile.as_str(),
        other.id,
        other.profile.as_str()
    ))
}

impl Gateway {
    pub fn load(path: &Path) -> Result<Gateway, ConfigErrors> {
        let (spec, text) = load_toml::<GatewaySpec>(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut errors = Vec::new();
        if let Err(e) = spec.program.validate() {
            errors.push(ConfigError::new(path, e).field("program"));
        }
        if spec.report.min_cell == 0 {
            errors.push(
                ConfigError::new(
                    path,
                    "`min_cell` must be at least 1: it is the largest count suppressed",
                )
                .field("report"),
            );
        }
        if spec.report.keep_months < 15 {
            errors.push(
                ConfigError::new(
                    path,
                    format!(
                        "`keep_months` must be at least 15 (last month's report needs 12 months and the 90 days before them), not {}",
                        spec.report.keep_months
                    ),
                )
                .field("report"),
            );
        }
        let adapters_dir = base.join(spec.adapters_dir.as_deref().unwrap_or("adapters"));
        let mut pipelines = Vec::new();
        for (i, p) in spec.pipelines.iter().enumerate() {
            let line = text
                .match_indices("[[pipeline]]")
                .nth(i)
                .map(|(off, _)| super::error::line_of(&text, off));
            let at = |e: ConfigError| match line {
                Some(l) => e.at(l),
                None => e,
            };
            let apath = match Adapter::resolve(&p.adapter, std::slice::from_ref(&adapters_dir)) {
                Ok(a) => a,
                Err(_) if !p.adapter.ends_with(".toml") => {
                    errors.push(at(ConfigError::new(
                        path,
                        format!(
                            "no adapter named `{}` in {}",
                            p.adapter,
                            adapters_dir.display()
                        ),
                    )
                    .field("pipeline.adapter")));
                    continue;
                }
                Err(_) => base.join(&p.adapter),
            };
            match Adapter::load(&apath) {
                Ok(adapter) => pipelines.push(Pipeline {
                    source: match &p.source {
                        Some(src) => match src.validate() {
                            Ok(()) => Some(src.clone().resolve(base)),
                            Err((field, m)) => {
                                errors.push(at(ConfigError::new(path, m)
                                    .field(format!("pipeline.source.{field}"))));
                                None
                            }
                        },
                        None => None,
                    },
                    id: p.id.clone().unwrap_or_else(|| adapter.name.clone()),
                    folder: base.join(&p.folder),
                    pattern: p
                        .pattern
                        .clone()
                        .unwrap_or_else(|| adapter.transport.pattern.clone()),
                    after: p.after.unwrap_or(adapter.transport.after),
                    adapter,
                }),
                Err(e) => errors.extend(e.0),
            }
        }
        let mut destinations = Vec::new();
        let mut warnings = Vec::new();
        // A Kafka password written in the config works, but the file then holds a secret.
        let inline = "the SASL password is written in the config (`sasl.password` in `properties`): `sasl_password_file` or `sasl_password_env` keeps it out";
        for p in &spec.pipelines {
            if let Some(super::source::SourceSpec::Kafka { properties, .. }) = &p.source
                && properties.contains_key("sasl.password")
            {
                warnings.push(
                    ConfigError::new(path, inline).field(format!("pipeline `{}`", p.adapter)),
                );
            }
        }
        for d in &spec.destinations {
            if let Some(super::destination::DeliverSpec::Kafka { properties, .. }) = &d.deliver
                && properties.contains_key("sasl.password")
            {
                warnings
                    .push(ConfigError::new(path, inline).field(format!("destination `{}`", d.id)));
            }
        }
        for (i, d) in spec.destinations.iter().enumerate() {
            let line = text
                .match_indices("[[destination]]")
                .nth(i)
                .map(|(off, _)| super::error::line_of(&text, off));
            if let Some(w) = relinks(&spec.destinations[..i], d) {
                let w = ConfigError::new(path, w).field(format!("destination `{}`", d.id));
                warnings.push(match line {
                    Some(l) => w.at(l),
                    None => w,
                });
            }
            match d.build() {
                Ok(dest) => destinations.push(dest),
                Err(es) => errors.extend(es.into_iter().map(|e| match e.field {
                    // A profile's refusal: the destination, the field and the entry's line.
                    Some(field) => {
                        let err = ConfigError::new(
                            path,
                            format!("destination `{}`: field `{field}`: {}", d.id, e.message),
                        );
                        match field_line(&text, i, &field).or(line) {
                            Some(l) => err.at(l),
                            None => err,
                        }
                    }
                    None => {
                        let err = ConfigError::new(path, e.message)
                            .field(format!("destination `{}`", d.id));
                        match line {
                            Some(l) => err.at(l),
                            None => err,
                        }
                    }
                })),
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for d in &spec.destinations {
            if !ids.insert(&d.id) {
                errors.push(
                    ConfigError::new(path, format!("destination id `{}` is used twice", d.id))
                        .field("destination"),
                );
            }
        }
        let mut pids = std::collections::BTreeSet::new();
        for p in &pipelines {
            if !pids.insert(p.id.as_str()) {
                errors.push(
                    ConfigError::new(
                        path,
                        format!(
                            "pipeline id `{}` is used twice (give the pipelines of one adapter an `id` each)",
                            p.id
                        ),
                    )
                    .field("pipeline.id"),
                );
            }
        }
        let server = match spec.server.as_ref().map(|s| s.validate(path, base)) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                errors.extend(e);
                None
            }
            None => None,
        };
        let pipeline_ids: Vec<&str> = pipelines.iter().map(|p| p.id.as_str()).collect();
        let destination_ids: Vec<&str> = spec.destinations.iter().map(|d| d.id.as_str()).collect();
        let mut clients = Vec::new();
        let mut cids = std::collections::BTreeSet::new();
        for c in &spec.clients {
            if !cids.insert(c.id.as_str()) {
                errors.push(
                    ConfigError::new(path, format!("client id `{}` is used twice", c.id))
                        .field("client"),
                );
            }
            match c.validate(path, base, &pipeline_ids, &destination_ids) {
                Ok(c) => {
                    if matches!(c.credential, super::server::Credential::CertSubject(_))
                        && server.as_ref().is_some_and(|s| s.client_ca.is_none())
                    {
                        errors.push(
                            ConfigError::new(path, "`cert_subject` needs `[server] client_ca`")
                                .field(format!("client `{}`", c.id)),
                        );
                    }
                    clients.push(c)
                }
                Err(e) => errors.extend(e),
            }
        }
        errors.extend(super::followup::errors(
            spec.followup.as_ref(),
            &destination_ids,
            path,
        ));
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Gateway {
            server,
            clients,
            path: path.to_owned(),
            store_path: base.join(&spec.store.path),
            incident_retention_days: spec.store.incident_retention_days,
            adapters_dir,
            program: spec.program,
            pipelines,
            destinations,
            roster: spec.roster,
            report_min_cell: spec.report.min_cell,
            report_keep_months: spec.report.keep_months,
            vault_key_file: spec.keys.vault_key_file.as_ref().map(|f| base.join(f)),
            audit_key_file: spec.keys.audit_key_file.as_ref().map(|f| base.join(f)),
            outbox_key_file: spec.keys.outbox_key_file.as_ref().map(|f| base.join(f)),
            deliveries: spec
                .destinations
                .iter()
                .filter_map(|d| {
                    let kind = match d.deliver.as_ref()? {
                        super::destination::DeliverSpec::File {
                            folder,
                            format,
                            max_records,
                        } => DeliveryKind::File {
                            folder: base.join(folder),
                            format: *format,
                            max_records: *max_records,
                            owner_only: d.profile
                                != crate::policy::profile::ProfileKind::SafeHarbor,
                        },
                        super::destination::DeliverSpec::Hl7 {
                            address,
                            receiving_application,
                            receiving_facility,
                            timeout_ms,
                            ack_mode,
                            charset,
                            tls,
                            server_name,
                            ca_file,
                            identity_file,
                            concurrency,
                        } => DeliveryKind::Hl7 {
                            concurrency: *concurrency,
                            address: address.clone(),
                            receiver: crate::deliver::hl7out::Receiver {
                                application: receiving_application.clone(),
                                facility: receiving_facility.clone(),
                                enhanced: *ack_mode == super::destination::AckMode::Enhanced,
                                charset: *charset,
                            },
                            timeout_ms: *timeout_ms,
                            tls: tls.then(|| MllpTlsSpec {
                                server_name: server_name.clone().unwrap_or_else(|| {
                                    address
                                        .rsplit_once(':')
                                        .map_or(address.clone(), |(h, _)| h.to_string())
                                }),
                                ca_file: ca_file.as_ref().map(|f| base.join(f)),
                                identity_file: identity_file.as_ref().map(|f| base.join(f)),
                            }),
                        },
                        super::destination::DeliverSpec::Kafka {
                            brokers,
                            topic,
                            timeout_ms,
                            properties,
                            sasl_password_file,
                            sasl_password_env,
                        } => DeliveryKind::Kafka {
                            brokers: brokers.clone(),
                            topic: topic.clone(),
                            timeout_ms: *timeout_ms,
                            properties: properties.clone(),
                            sasl_password: super::sasl::SaslPassword::new(
                                sasl_password_file.as_ref().map(|f| base.join(f)),
                                sasl_password_env.clone(),
                            ),
                        },
                        spec => {
                            let (h, fhir) = spec.http()?;
                            DeliveryKind::Webhook {
                                http: HttpDelivery {
                                    url: h.url.clone(),
                                    secret_file: h.secret_file.as_ref().map(|f| base.join(f)),
                                    secret_env: h.secret_env.clone(),
                                    ca_file: h.ca_file.as_ref().map(|f| base.join(f)),
                                    identity_file: h.identity_file.as_ref().map(|f| base.join(f)),
                                    timeout_ms: h.timeout_ms,
                                    batch_max: h.batch_max,
                                    concurrency: h.concurrency,
                                },
                                fhir,
                            }
                        }
                    };
                    Some((
                        d.id.clone(),
                        Delivery {
                            kind,
                            retry: d.retry.clone(),
                            retention_hours: d.retention_hours,
                            rate_per_second: d.rate_per_second,
                            accept_within: d.accept_within_duration(),
                            poll_status: d.resolved_poll_status(base),
                        },
                    ))
                })
                .chain(super::followup::delivery(spec.followup.as_ref(), base))
                .collect(),
            warnings,
        })
    }

    /// The existing files and folders that hold a secret or identifying values (the store and
    /// its `-wal`/`-shm`, key files, shared secrets, SASL passwords and client keys, the folders of file
    /// destinations that receive identifying values) and that group or others can read: what,
    /// where and the mode. Paths only, never contents (src/owner_only.rs says why they should be
    /// 0600 and 0700).
    pub fn readable_by_others(&self) -> Vec<(&'static str, PathBuf, u32)> {
        let mut files: Vec<(&'static str, PathBuf)> = Vec::new();
        let side = |suffix: &str| {
            let mut p = self.store_path.clone().into_os_string();
            p.push(suffix);
            PathBuf::from(p)
        };
        files.push(("the store", self.store_path.clone()));
        files.push(("the store's write-ahead log", side("-wal")));
        files.push(("the store's shared memory", side("-shm")));
        for f in [
            &self.vault_key_file,
            &self.audit_key_file,
            &self.outbox_key_file,
        ]
        .into_iter()
        .flatten()
        {
            files.push(("a key file", f.clone()));
        }
        for d in self.deliveries.values() {
            match &d.kind {
                DeliveryKind::File {
                    folder,
                    owner_only: true,
                    ..
                } => files.push((
                    "the folder of a destination of identifying values",
                    folder.clone(),
                )),
                DeliveryKind::Webhook { http, .. } => {
                    files.extend(http.secret_file.clone().map(|f| ("a shared secret", f)));
                    files.extend(http.identity_file.clone().map(|f| ("a client key", f)));
                }
                DeliveryKind::Hl7 { tls: Some(t), .. } => {
                    files.extend(t.identity_file.clone().map(|f| ("a client key", f)));
                }
                DeliveryKind::Kafka { sasl_password, .. } => {
                    files.extend(sasl_password.file.clone().map(|f| ("a SASL password", f)));
                }
                _ => {}
            }
        }
        for p in &self.pipelines {
            if let Some(super::source::SourceSpec::Kafka {
                sasl_password_file: Some(f),
                ..
            }) = &p.source
            {
                files.push(("a SASL password", PathBuf::from(f)));
            }
        }
        files
            .into_iter()
            .filter_map(|(what, p)| crate::owner_only::others_can_read(&p).map(|m| (what, p, m)))
            .collect()
    }

    /// The vault and audit secrets (environment first, then the configured files).
    pub fn keys(&self) -> Result<Keys, String> {
        let outbox = if self.deliveries.is_empty() {
            None
        } else {
            Some(load_key(
                "PNP_GATEWAY_OUTBOX_KEY",
                self.outbox_key_file.as_deref(),
            )?)
        };
        Ok(Keys {
            vault: load_key("PNP_GATEWAY_VAULT_KEY", self.vault_key_file.as_deref())?,
            audit: load_key("PNP_GATEWAY_AUDIT_KEY", self.audit_key_file.as_deref())?,
            outbox,
        })
    }
}

/// The line of the `fields` entry naming `field` in the `index`th `[[destination]]`, read
/// through the TOML parser's spans (so a comment or another table naming it is not mistaken).
fn field_line(text: &str, index: usize, field: &str) -> Option<usize> {
    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        destination: Vec<Dest>,
    }
    #[derive(Deserialize)]
    struct Dest {
        #[serde(default)]
        fields: BTreeMap<String, toml::Spanned<toml::Value>>,
    }
    let doc: Doc = toml::from_str(text).ok()?;
    let span = doc.destination.get(index)?.fields.get(field)?.span();
    Some(super::error::line_of(text, span.start))
}
