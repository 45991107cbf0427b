//! `[[destination]]` in gateway.toml: who receives what. Each destination has a disclosure
//! profile (`safe-harbor`, `limited-data-set`, `consented-referral`, `aggregate`) and may
//! override the profile's field methods; the profile's rules are checked before anything runs.
//! An `aggregate` destination receives the monthly program report's suppressed counts only.

use crate::policy::disclose::Destination;
use crate::policy::profile::{Method, Profile, ProfileError, ProfileKind};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    pub id: String,
    pub name: Option<String>,
    pub profile: ProfileKind,
    /// The purpose this destination receives data for; a consent must name it.
    #[serde(default = "default_purpose")]
    pub purpose: String,
    /// General designations (42 CFR 2.31(a)(4)) this recipient falls under.
    #[serde(default)]
    pub designations: Vec<String>,
    /// Only referrals by a PRSS with a current certification.
    #[serde(default)]
    pub require_certified_prss: bool,
    /// De-identified destinations of one recipient under one agreement: they get the same
    /// tokens and date shifts. Every other destination gets tokens of its own.
    pub link_group: Option<String>,
    /// The data use agreement a limited data set needs (164.514(e)(4)).
    pub dua: Option<String>,
    /// Overrides the Safe Harbor restricted ZIP3 list.
    pub restricted_zip3: Option<Vec<String>>,
    /// Field → method overrides of the profile's preset (`redact` removes a field).
    #[serde(default)]
    pub fields: BTreeMap<String, Method>,
    /// How payloads reach the destination. Without it, decisions are previewed and audited but
    /// nothing is queued.
    pub deliver: Option<DeliverSpec>,
    #[serde(default)]
    pub retry: RetrySpec,
    /// Hours a delivered payload stays (encrypted) in the outbox; 0, the default, purges it at
    /// once. The audit trail keeps its digest either way.
    #[serde(default)]
    pub retention_hours: u64,
    /// At most this many requests (or batches, or HL7 messages) per second to this destination,
    /// across its concurrent senders (`webhook`, `fhir`, `hl7`). Unlimited when absent.
    pub rate_per_second: Option<f64>,
    /// A referral still `sent` this long after its delivery (`"72h"`) is overdue: one alert
    /// (docs/closed-loop.md, "Follow-up").
    pub accept_within: Option<String>,
    /// The provider keeps the Task on its own FHIR server: poll it (a `fhir` delivery only).
    pub poll_status: Option<super::followup::PollStatusSpec>,
}

/// `[destination.deliver]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeliverSpec {
    /// Files in a folder (a provider's drop folder, a DHHR batch drop): NDJSON, or CSV with one
    /// column per payload field; written under a temporary name, synced, then renamed. A new
    /// file per dispatch pass (time), split at `max_records` (size).
    File {
        folder: String,
        #[serde(default)]
        format: FileFormat,
        #[serde(default = "default_max_records")]
        max_records: usize,
    },
    /// An HTTPS POST per referral, signed with a shared secret (`secret_file`, or the
    /// environment variable `secret_env`); `ca_file` trusts a private CA, `identity_file` (a
    /// PEM certificate and key) authenticates the gateway.
    Webhook(HttpSpec),
    /// An HL7 v2.5.1 REF^I12 per referral over MLLP to `address` (IP:port), ACK awaited on a
    /// connection kept open. `ack_mode` is `original` (AA/AR/AE) or `enhanced` (MSH-15 AL, the
    /// commit ACK CA/CR/CE settles). `tls = true` wraps MLLP in TLS, checking the server's
    /// certificate against `server_name` (default: the address's IP) and the system's roots or
    /// `ca_file`; `identity_file` (a PEM certificate and key) authenticates the gateway.
    /// `charset` says how values outside ASCII travel (see [`crate::deliver::hl7out::Charset`]).
    Hl7 {
        address: String,
        #[serde(default = "default_app")]
        receiving_application: String,
        #[serde(default)]
        receiving_facility: String,
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
        #[serde(default)]
        ack_mode: AckMode,
        /// `utf-8` (default: raw UTF-8, MSH-18 `UNICODE UTF-8` when a value is not ASCII) or
        /// `escape` (ASCII only, `\Xhh..\` escapes) for receivers that ignore MSH-18.
        #[serde(default)]
        charset: crate::deliver::hl7out::Charset,
        #[serde(default)]
        tls: bool,
        server_name: Option<String>,
        ca_file: Option<String>,
        identity_file: Option<String>,
        /// Connections sending at once (default 1: many MLLP receivers take one connection).
        #[serde(default = "one")]
        concurrency: usize,
    },
    /// A FHIR R4 transaction Bundle (Patient, ServiceRequest, Task, Consent) per referral, POSTed
    /// to the FHIR server's base `url`, signed like a webhook.
    Fhir(HttpSpec),
    /// One JSON message per payload to a Kafka topic (DHHR's program stream), with idempotence
    /// and `acks=all`; `properties` passes librdkafka settings such as `security.protocol`,
    /// `ssl.ca.location` or `sasl.*` (not the ones the gateway sets itself).
    Kafka {
        brokers: String,
        topic: String,
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
        #[serde(default)]
        properties: BTreeMap<String, String>,
        /// The SASL password's file (trimmed), instead of `sasl.password` in `properties`
        /// (see `config::sasl`).
        sasl_password_file: Option<String>,
        /// The environment variable holding the SASL password (read before the file).
        sasl_password_env: Option<String>,
    },
}

/// The `file` destination's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    #[default]
    Ndjson,
    Csv,
}

fn default_max_records() -> usize {
    10_000
}

/// HL7 v2 acknowledgment modes (v2.5.1 chapter 2.9).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    #[default]
    Original,
    Enhanced,
}

fn default_app() -> String {
    "INTAKE".into()
}

/// The HTTPS settings of the `webhook` and `fhir` kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    pub url: String,
    pub secret_file: Option<String>,
    pub secret_env: Option<String>,
    pub ca_file: Option<String>,
    pub identity_file: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Referrals per request (`webhook` only): 1, the default, POSTs each payload as it is;
    /// more POSTs a JSON array of `{"idempotency_key", "payload"}`.
    #[serde(default = "default_batch")]
    pub batch_max: usize,
    /// Requests in flight at once (default 4), over one connection pool.
    #[serde(default = "default_http_concurrency")]
    pub concurrency: usize,
}

fn one() -> usize {
    1
}

fn default_http_concurrency() -> usize {
    4
}

fn default_batch() -> usize {
    1
}

impl DeliverSpec {
    /// The HTTPS settings, and whether the body is a FHIR Bundle.
    pub fn http(&self) -> Option<(&HttpSpec, bool)> {
        match self {
            DeliverSpec::File { .. } | DeliverSpec::Hl7 { .. } | DeliverSpec::Kafka { .. } => None,
            DeliverSpec::Webhook(h) => Some((h, false)),
            DeliverSpec::Fhir(h) => Some((h, true)),
        }
    }
}

fn default_timeout() -> u64 {
    10_000
}

/// `[destination.retry]`: bounded attempts and age, exponential backoff with jitter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff")]
    pub max_backoff_ms: u64,
    #[serde(default = "default_max_age")]
    pub max_age_hours: u64,
}

fn default_attempts() -> u32 {
    10
}
fn default_initial() -> u64 {
    1_000
}
fn default_max_backoff() -> u64 {
    300_000
}
fn default_max_age() -> u64 {
    72
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            max_attempts: default_attempts(),
            initial_backoff_ms: default_initial(),
            max_backoff_ms: default_max_backoff(),
            max_age_hours: default_max_age(),
        }
    }
}

fn default_purpose() -> String {
    "treatment_referral".into()
}

impl DestinationSpec {
    /// Pure checks and the compiled destination.
    pub fn build(&self) -> Result<Destination, Vec<SpecError>> {
        let mut errors: Vec<String> = Vec::new();
        let mut profile_errors = Vec::new();
        if self.id.trim().is_empty() || self.id.contains(char::is_whitespace) {
            errors.push("`id` must be a non-empty word".to_string());
        }
        if let Some(g) = &self.link_group {
            if g.trim().is_empty() || g.contains(char::is_whitespace) {
                errors.push("`link_group` must be a non-empty word".to_string());
            }
            if matches!(
                self.profile,
                ProfileKind::ConsentedReferral | ProfileKind::Aggregate
            ) {
                errors.push(format!(
                    "`link_group` applies to de-identified profiles (safe-harbor, limited-data-set): a {} destination carries no token",
                    self.profile.as_str()
                ));
            }
        }
        if self.profile == ProfileKind::LimitedDataSet
            && self.dua.as_deref().is_none_or(str::is_empty)
        {
            errors
                .push("a limited-data-set destination needs `dua` (its data use agreement)".into());
        }
        if let Some((h, fhir)) = self.deliver.as_ref().and_then(DeliverSpec::http) {
            let local =
                h.url.starts_with("http://127.0.0.1") || h.url.starts_with("http://localhost");
            if !h.url.starts_with("https://") && !local {
                errors.push(format!(
                    "`url` must be https:// (plain http only to localhost), not `{}`",
                    h.url
                ));
            }
            if h.secret_file.is_none() && h.secret_env.is_none() {
                errors.push(
                    "an HTTPS delivery needs `secret_file` or `secret_env` (the shared signing secret)".into(),
                );
            }
            if !(1..=64).contains(&h.concurrency) {
                errors.push(format!("`concurrency` must be 1-64, not {}", h.concurrency));
            }
            if !(1..=1000).contains(&h.batch_max) {
                errors.push(format!("`batch_max` must be 1-1000, not {}", h.batch_max));
            }
            if fhir && h.batch_max != 1 {
                errors.push("a `fhir` delivery sends one transaction Bundle per referral: `batch_max` must be 1".into());
            }
            if fhir && self.profile != ProfileKind::ConsentedReferral {
                errors.push(
                    "a `fhir` delivery carries consented referrals: the profile must be consented-referral".into(),
                );
            }
        }
        if let Some(DeliverSpec::Hl7 {
            address,
            tls,
            concurrency,
            server_name,
            ca_file,
            identity_file,
            ..
        }) = &self.deliver
        {
            if !(1..=64).contains(concurrency) {
                errors.push(format!("`concurrency` must be 1-64, not {concurrency}"));
            }
            if !tls && (server_name.is_some() || ca_file.is_some() || identity_file.is_some()) {
                errors.push(
                    "hl7 `server_name`, `ca_file` and `identity_file` need `tls = true`".into(),
                );
            }
            if self.profile != ProfileKind::ConsentedReferral {
                errors.push("an `hl7` delivery carries consented referrals: the profile must be consented-referral".into());
            }
            if address.parse::<std::net::SocketAddr>().is_err() {
                errors.push(format!("hl7 `address` must be IP:port, not `{address}`"));
            }
        }
        if let Some(r) = self.rate_per_second {
            if !(r > 0.0 && r.is_finite()) {
                errors.push(format!("`rate_per_second` must be above 0, not {r}"));
            }
            if matches!(
                self.deliver,
                None | Some(DeliverSpec::File { .. } | DeliverSpec::Kafka { .. })
            ) {
                errors.push("`rate_per_second` applies to webhook, fhir and hl7 deliveries".into());
            }
        }
        if let Some(DeliverSpec::File { max_records, .. }) = &self.deliver
            && *max_records == 0
        {
            errors.push("file `max_records` must be at least 1".into());
        }
        if let Some(DeliverSpec::Kafka {
            brokers,
            topic,
            properties,
            sasl_password_file,
            sasl_password_env,
            ..
        }) = &self.deliver
        {
            if let Err(e) = crate::config::sasl::SaslPassword::validate(
                sasl_password_file.as_deref(),
                sasl_password_env.as_deref(),
                properties,
            ) {
                errors.push(format!("kafka: {e}"));
            }
            if brokers.trim().is_empty() {
                errors.push("kafka `brokers` is empty (host:port[,host:port...])".into());
            }
            let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if topic.is_empty() || topic.len() > 249 || !topic.chars().all(legal) {
                errors.push(format!(
                    "kafka `topic` must be 1-249 of [A-Za-z0-9._-], not `{topic}`"
                ));
            }
            for k in properties.keys() {
                if crate::deliver::kafka::RESERVED.contains(&k.as_str()) {
                    errors.push(format!(
                        "kafka property `{k}` is set by the gateway (idempotence, acks=all, `timeout_ms`) and cannot be overridden"
                    ));
                }
            }
        }
        if let Some(a) = &self.accept_within {
            errors.extend(super::followup::validate_accept_within(
                a,
                self.profile == ProfileKind::ConsentedReferral,
                self.deliver.is_some(),
            ));
        }
        if let Some(p) = &self.poll_status {
            errors.extend(p.validate(self.deliver.as_ref()));
        }
        let profile = Profile::build(self.profile, &self.fields, self.restricted_zip3.as_deref())
            .map_err(|e| profile_errors = e);
        match profile {
            Ok(profile) if errors.is_empty() => Ok(Destination {
                id: self.id.clone(),
                profile,
                purpose: self.purpose.clone(),
                designations: self.designations.clone(),
                require_certified_prss: self.require_certified_prss,
                link_group: self.link_group.clone(),
            }),
            _ => Err(errors
                .into_iter()
                .map(|message| SpecError {
                    field: None,
                    message,
                })
                .chain(profile_errors.into_iter().map(|e: ProfileError| SpecError {
                    field: Some(e.field),
                    message: e.message,
                }))
                .collect()),
        }
    }
}

/// A problem with a destination; `field` when it is about one of its `fields` entries, so that
/// `check` can point at that entry's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub field: Option<String>,
    pub message: String,
}

/// `[keys]`: where the vault's and the audit trail's secrets are. Environment variables
/// `PNP_GATEWAY_VAULT_KEY` and `PNP_GATEWAY_AUDIT_KEY` take precedence. Never in this file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysSpec {
    pub vault_key_file: Option<String>,
    pub audit_key_file: Option<String>,
    /// Encrypts outbox payloads at rest (`PNP_GATEWAY_OUTBOX_KEY` takes precedence).
    pub outbox_key_file: Option<String>,
}

/// The secrets, loaded.
#[derive(Clone)]
pub struct Keys {
    pub vault: Vec<u8>,
    pub audit: Vec<u8>,
    /// Only needed when a destination delivers.
    pub outbox: Option<Vec<u8>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

/// Reads one secret: the environment variable, else the file; at least 32 bytes.
pub fn load_key(env: &str, file: Option<&std::path::Path>) -> Result<Vec<u8>, String> {
    let key = match std::env::var(env) {
        Ok(v) => v.trim().as_bytes().to_vec(),
        Err(_) => {
            let f =
                file.ok_or_else(|| format!("no key: set {env} or name a key file in [keys]"))?;
            let text = std::fs::read_to_string(f).map_err(|e| {
                format!(
                    "cannot read key file {}: {e} (`pnp-gateway keys init` creates it)",
                    f.display()
                )
            })?;
            text.trim().as_bytes().to_vec()
        }
    };
    if key.len() < 32 {
        return Err(format!(
            "the key from {env} or its file is shorter than 32 bytes"
        ));
    }
    Ok(key)
}
