//! The closed loop's follow-up settings (docs/closed-loop.md, "Polling a provider's FHIR server"
//! and "Follow-up"):
//!
//! - on a destination, `accept_within = "72h"`: a referral still `sent` after that long is
//!   overdue, and raises one alert;
//! - on a `fhir` destination, `[destination.poll_status]`: the provider keeps the Task on its own
//!   FHIR server, which the gateway polls for the Task's status;
//! - top-level `[followup]`: the PRSS's organization's own webhook, told of each overdue referral.
//!
//! Parsed with unknown fields denied and checked by pure `validate` functions (no I/O: a file
//! named here is read when the service starts, and a missing one is an error then).

use super::destination::{DeliverSpec, RetrySpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The id the follow-up webhook's outbox rows are queued under (`outbox list --destination
/// followup`, its metrics and status-page rows): no destination may have it while `[followup]`
/// is configured.
pub const FOLLOWUP: &str = "followup";

/// A duration as people write it in a config: a whole number and a unit, `ms`, `s`, `m`, `h` or
/// `d` (`"200ms"`, `"5m"`, `"72h"`, `"3d"`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let bad =
        || format!("`{s}` is not a duration such as \"200ms\", \"30s\", \"5m\", \"72h\" or \"3d\"");
    let n: u64 = n.parse().map_err(|_| bad())?;
    let ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(ms).map(Duration::from_millis).ok_or_else(bad)
}

/// `[destination.poll_status]`: where the provider keeps the Task the gateway sent, and how often
/// to ask for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollStatusSpec {
    /// The provider's FHIR base (`https://fhir.provider.example/r4`); by default the
    /// destination's own `deliver.url` (a server that took the transaction keeps the Task).
    pub url: Option<String>,
    /// How often each open referral's Task is asked for (default `"5m"`, at least `"100ms"`).
    #[serde(default = "default_every")]
    pub every: String,
    /// A file holding one `Name: value` header line (`Authorization: Bearer ...`), sent with
    /// each request and never logged.
    pub auth_header_file: Option<String>,
    /// A private CA for the provider's server; by default the destination's `deliver.ca_file`.
    pub ca_file: Option<String>,
    /// Each request's bound (default 10 s).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// At most this many Tasks asked for per pass (default 100): the referrals polled longest
    /// ago go first, the rest wait for the next pass.
    #[serde(default = "default_max_per_pass")]
    pub max_per_pass: usize,
}

fn default_every() -> String {
    "5m".into()
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_max_per_pass() -> usize {
    100
}

/// `[destination.poll_status]`, checked and with paths resolved.
#[derive(Debug, Clone)]
pub struct PollStatus {
    /// The FHIR base, without a trailing `/`.
    pub url: String,
    pub every: Duration,
    pub auth_header_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    pub max_per_pass: usize,
}

/// `https://`, or plain `http://` to this host only (as for a delivery's `url`).
fn url_ok(url: &str) -> bool {
    url.starts_with("https://")
        || url.starts_with("http://127.0.0.1")
        || url.starts_with("http://localhost")
}

impl PollStatusSpec {
    /// Pure checks; `deliver` is the destination's delivery (polling needs a `fhir` one: its
    /// Task is what is polled, found by the identifier the transaction created it with).
    pub fn validate(&self, deliver: Option<&DeliverSpec>) -> Vec<String> {
        let mut errors = Vec::new();
        let fhir_url = match deliver {
            Some(DeliverSpec::Fhir(h)) => Some(h.url.as_str()),
            _ => {
                errors.push("`poll_status` needs a `fhir` delivery: the Task polled is the one its transaction created".into());
                None
            }
        };
        match self.url.as_deref().or(fhir_url) {
            Some(u) if !url_ok(u) => errors.push(format!(
                "poll_status `url` must be https:// (plain http only to localhost), not `{u}`"
            )),
            _ => {}
        }
        match parse_duration(&self.every) {
            Ok(d) if d < Duration::from_millis(100) => errors.push(format!(
                "poll_status `every` must be at least 100ms, not `{}`",
                self.every
            )),
            Ok(_) => {}
            Err(e) => errors.push(format!("poll_status `every`: {e}")),
        }
        if !(100..=300_000).contains(&self.timeout_ms) {
            errors.push(format!(
                "poll_status `timeout_ms` must be 100-300000, not {}",
                self.timeout_ms
            ));
        }
        if !(1..=10_000).contains(&self.max_per_pass) {
            errors.push(format!(
                "poll_status `max_per_pass` must be 1-10000, not {}",
                self.max_per_pass
            ));
        }
        errors
    }

    /// The checked settings, relative paths resolved against `base` (call after `validate`).
    pub fn resolve(&self, deliver: Option<&DeliverSpec>, base: &Path) -> Option<PollStatus> {
        let Some(DeliverSpec::Fhir(h)) = deliver else {
            return None;
        };
        let url = self.url.as_deref().unwrap_or(&h.url);
        Some(PollStatus {
            url: url.trim_end_matches('/').to_string(),
            every: parse_duration(&self.every).ok()?,
            auth_header_file: self.auth_header_file.as_ref().map(|f| base.join(f)),
            ca_file: self
                .ca_file
                .as_ref()
                .or(h.ca_file.as_ref())
                .map(|f| base.join(f)),
            timeout: Duration::from_millis(self.timeout_ms),
            max_per_pass: self.max_per_pass,
        })
    }
}

/// A destination's `accept_within`: checked (a duration of at least a second, on a destination
/// that receives consented referrals).
pub fn validate_accept_within(
    accept_within: &str,
    consented_referral: bool,
    delivers: bool,
) -> Vec<String> {
    let mut errors = Vec::new();
    match parse_duration(accept_within) {
        Ok(d) if d < Duration::from_secs(1) => errors.push(format!(
            "`accept_within` must be at least 1s, not `{accept_within}`"
        )),
        Ok(_) => {}
        Err(e) => errors.push(format!("`accept_within`: {e}")),
    }
    if !consented_referral || !delivers {
        errors.push("`accept_within` applies to a consented-referral destination that delivers (`deliver`): only a referral is accepted".into());
    }
    errors
}

/// `[followup]`: the PRSS's organization's webhook, told of each overdue referral. Its notices
/// are signed like the gateway's webhook deliveries and go through the outbox (retried, backed
/// off, dead-lettered and replayable like any delivery) under the id [`FOLLOWUP`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowupSpec {
    /// Where the notices are POSTed.
    pub webhook: String,
    /// The shared signing secret (`secret_file`, or the environment variable `secret_env`).
    pub secret_file: Option<String>,
    pub secret_env: Option<String>,
    pub ca_file: Option<String>,
    pub identity_file: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub retry: RetrySpec,
}

impl FollowupSpec {
    /// Pure checks; `destinations` are the configured destinations' ids.
    pub fn validate(&self, destinations: &[&str]) -> Vec<String> {
        let mut errors = Vec::new();
        if !url_ok(&self.webhook) {
            errors.push(format!(
                "`webhook` must be https:// (plain http only to localhost), not `{}`",
                self.webhook
            ));
        }
        if self.secret_file.is_none() && self.secret_env.is_none() {
            errors.push(
                "`[followup]` needs `secret_file` or `secret_env` (the webhook's signing secret)"
                    .into(),
            );
        }
        if !(100..=300_000).contains(&self.timeout_ms) {
            errors.push(format!(
                "`timeout_ms` must be 100-300000, not {}",
                self.timeout_ms
            ));
        }
        if self.retry.max_attempts == 0 {
            errors.push("`retry.max_attempts` must be at least 1".into());
        }
        if destinations.contains(&FOLLOWUP) {
            errors.push(format!(
                "a destination is named `{FOLLOWUP}`, the id the follow-up webhook's notices are queued under: rename it"
            ));
        }
        errors
    }

    /// The webhook as a delivery (paths resolved against `base`), queued under [`FOLLOWUP`].
    pub fn delivery(&self, base: &Path) -> super::gateway::Delivery {
        use super::gateway::{Delivery, DeliveryKind, HttpDelivery};
        Delivery {
            kind: DeliveryKind::Webhook {
                http: HttpDelivery {
                    url: self.webhook.clone(),
                    secret_file: self.secret_file.as_ref().map(|f| base.join(f)),
                    secret_env: self.secret_env.clone(),
                    ca_file: self.ca_file.as_ref().map(|f| base.join(f)),
                    identity_file: self.identity_file.as_ref().map(|f| base.join(f)),
                    timeout_ms: self.timeout_ms,
                    batch_max: 1,
                    concurrency: 1,
                },
                fhir: false,
            },
            retry: self.retry.clone(),
            retention_hours: 0,
            rate_per_second: None,
            accept_within: None,
            poll_status: None,
        }
    }
}

/// `[followup]`'s problems, as configuration errors of `path`.
pub fn errors(
    spec: Option<&FollowupSpec>,
    destinations: &[&str],
    path: &Path,
) -> Vec<super::ConfigError> {
    spec.map(|f| f.validate(destinations))
        .unwrap_or_default()
        .into_iter()
        .map(|m| super::ConfigError::new(path, m).field("followup"))
        .collect()
}

/// `[followup]` as a delivery, under its id (see [`FOLLOWUP`]).
pub fn delivery(
    spec: Option<&FollowupSpec>,
    base: &Path,
) -> Option<(String, super::gateway::Delivery)> {
    spec.map(|f| (FOLLOWUP.to_string(), f.delivery(base)))
}

impl super::destination::DestinationSpec {
    /// `accept_within`, checked by `build`.
    pub fn accept_within_duration(&self) -> Option<Duration> {
        parse_duration(self.accept_within.as_deref()?).ok()
    }

    /// `poll_status`, checked by `build`, paths resolved against `base`.
    pub fn resolved_poll_status(&self, base: &Path) -> Option<PollStatus> {
        self.poll_status
            .as_ref()?
            .resolve(self.deliver.as_ref(), base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration(" 72h "), Ok(Duration::from_secs(72 * 3600)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86_400)));
        for bad in [
            "",
            "h",
            "5",
            "5 weeks",
            "-1s",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    fn poll(toml_text: &str) -> PollStatusSpec {
        toml::from_str(toml_text).unwrap()
    }

    fn fhir(url: &str) -> DeliverSpec {
        toml::from_str::<toml::Value>(&format!(
            "kind = \"fhir\"\nurl = \"{url}\"\nsecret_env = \"S\""
        ))
        .unwrap()
        .try_into()
        .unwrap()
    }

    #[test]
    fn polling_needs_a_fhir_delivery_and_sane_bounds() {
        let d = fhir("https://fhir.example/r4/");
        assert!(poll("").validate(Some(&d)).is_empty());
        let p = poll("").resolve(Some(&d), Path::new("/etc")).unwrap();
        assert_eq!(p.url, "https://fhir.example/r4");
        assert_eq!(p.every, Duration::from_secs(300));
        let file: DeliverSpec = toml::from_str::<toml::Value>("kind = \"file\"\nfolder = \"x\"")
            .unwrap()
            .try_into()
            .unwrap();
        assert!(poll("").validate(Some(&file))[0].contains("needs a `fhir` delivery"));
        let e = poll("url = \"http://provider.example\"\nevery = \"10ms\"\nmax_per_pass = 0")
            .validate(Some(&d));
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(toml::from_str::<PollStatusSpec>("evry = \"5m\"").is_err());
    }

    #[test]
    fn accept_within_is_for_delivered_referrals() {
        assert!(validate_accept_within("72h", true, true).is_empty());
        assert_eq!(validate_accept_within("500ms", true, true).len(), 1);
        assert_eq!(validate_accept_within("soon", false, true).len(), 2);
    }

    #[test]
    fn the_followup_webhook_is_checked() {
        let f: FollowupSpec = toml::from_str("webhook = \"http://example.org/x\"").unwrap();
        let e = f.validate(&["prestera", FOLLOWUP]);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(toml::from_str::<FollowupSpec>("webhook = \"https://x\"\nsecret = \"s\"").is_err());
    }
}
