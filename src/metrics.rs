//! Counters and gauges of a running gateway, served in Prometheus' text format on
//! `run --metrics-listen ADDR` (plain HTTP: bind it to localhost or a management network).
//! Only counts, labelled by destination, decision, outcome, status or rejection kind: never a
//! value from a record.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What `/metrics` shows; the run loop replaces or adds to it after each pass.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub files: u64,
    pub records: u64,
    pub bytes: u64,
    pub incidents: u64,
    pub eligible: u64,
    /// Rejected records by kind.
    pub rejected: BTreeMap<String, u64>,
    /// Disclosure decisions by (destination, deliver|withhold).
    pub decisions: BTreeMap<(String, String), u64>,
    /// Delivery outcomes by (destination, delivered|retried|dead|withdrawn).
    pub deliveries: BTreeMap<(String, String), u64>,
    /// Outbox rows now, by (destination, status).
    pub outbox: BTreeMap<(String, String), u64>,
    /// Destinations failing now (queuing or dead-lettering).
    pub failing: BTreeMap<String, bool>,
    /// Overdue referrals alerted (not accepted within `accept_within`), by destination.
    pub overdue: BTreeMap<String, u64>,
    pub passes: u64,
    /// Records the service took in by push (API or live source), by (pipeline, accepted|rejected).
    pub pushed: BTreeMap<(String, String), u64>,
    /// Each live source's state, by pipeline id.
    pub sources: BTreeMap<String, SourceState>,
    /// Consented referrals now, by (destination, lifecycle status).
    pub referrals: BTreeMap<(String, String), u64>,
    /// Providers' answers to referrals, by (channel, kind, outcome): see [`Metrics::answer`].
    pub answers: BTreeMap<(&'static str, &'static str, &'static str), u64>,
}

/// What `/readyz` and the metrics say of a live source. No value of any record is in it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceState {
    pub kind: &'static str,
    /// `listening`, `polling`, `consuming`, `backing_off`, `stopped`.
    pub state: &'static str,
    /// Open connections (MLLP), the cursor (a poll source: the operator's own position value,
    /// not a record's), partitions and lag (Kafka).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// The kind of the last error (never a value), when the last attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Failed attempts since the start (a refused connection, a failing page, a broker error).
    pub errors: u64,
}

impl SourceState {
    /// Records a failed attempt of kind `kind` (never a value).
    pub fn failed(&mut self, kind: String) {
        self.errors += 1;
        self.last_error = Some(kind);
    }
}

#[derive(Default)]
pub struct Metrics {
    now: Mutex<Snapshot>,
}

impl Metrics {
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        if let Ok(mut s) = self.now.lock() {
            f(&mut s);
        }
    }

    /// Each live source's state, without copying the rest.
    pub fn sources(&self) -> BTreeMap<String, SourceState> {
        self.now
            .lock()
            .map(|s| s.sources.clone())
            .unwrap_or_default()
    }

    /// Counts one provider's answer to a referral: `channel` (`hl7_mllp`, `hl7_http`, `fhir`,
    /// `json`, `fhir_poll` for a Task the gateway read from the provider's server), `kind` (`rri`, `ack`, `other` for an HL7 message that is neither; `task`;
    /// `status`) and `outcome` (`recorded`, `ignored`: understood, nothing to record;
    /// `rejected`; `deferred`: the sender is asked to send it again). The labels are
    /// `&'static str` so that only the gateway's own names, never a value an answer carried,
    /// can become one.
    pub fn answer(&self, channel: &'static str, kind: &'static str, outcome: &'static str) {
        self.update(|s| *s.answers.entry((channel, kind, outcome)).or_default() += 1);
    }

    pub fn snapshot(&self) -> Snapshot {
        self.now.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The outcome of an answer taken over HTTP, by its status, for [`Metrics::answer`]: a success
/// was recorded, a 503 asks for it again (deferred), anything else refused it.
pub fn outcome_of(status: axum::http::StatusCode) -> &'static str {
    if status.is_success() {
        "recorded"
    } else if status == axum::http::StatusCode::SERVICE_UNAVAILABLE {
        "deferred"
    } else {
        "rejected"
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition (version 0.0.4).
pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    let mut one = |name: &str, kind: &str, help: &str, v: u64| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    };
    one(
        "pnp_files_read_total",
        "counter",
        "Export files read.",
        s.files,
    );
    one(
        "pnp_records_read_total",
        "counter",
        "Records read from exports.",
        s.records,
    );
    one(
        "pnp_bytes_read_total",
        "counter",
        "Bytes read from exports.",
        s.bytes,
    );
    one(
        "pnp_incidents_total",
        "counter",
        "Canonical incidents staged.",
        s.incidents,
    );
    one(
        "pnp_incidents_eligible_total",
        "counter",
        "Staged incidents the program takes.",
        s.eligible,
    );
    one(
        "pnp_dispatch_passes_total",
        "counter",
        "Ingest, disclosure and dispatch passes.",
        s.passes,
    );
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(o, "{name}{{{labels}}} {v}");
        }
    };
    family(
        "pnp_records_rejected_total",
        "counter",
        "Records quarantined, by kind.",
        s.rejected
            .iter()
            .map(|(k, v)| (format!("kind=\"{}\"", label(k)), *v))
            .collect(),
    );
    // Counts keyed by (destination, something): `destination="..",{name}=".."`.
    let per_destination = |m: &BTreeMap<(String, String), u64>, name: &str| {
        m.iter()
            .map(|((d, k), v)| {
                (
                    format!("destination=\"{}\",{name}=\"{}\"", label(d), label(k)),
                    *v,
                )
            })
            .collect()
    };
    family(
        "pnp_disclosure_decisions_total",
        "counter",
        "Disclosure decisions, by destination and decision.",
        per_destination(&s.decisions, "decision"),
    );
    family(
        "pnp_deliveries_total",
        "counter",
        "Delivery outcomes, by destination and outcome.",
        per_destination(&s.deliveries, "outcome"),
    );
    family(
        "pnp_outbox_rows",
        "gauge",
        "Outbox rows now, by destination and status.",
        per_destination(&s.outbox, "status"),
    );
    family(
        "pnp_referrals_overdue_total",
        "counter",
        "Referrals not accepted within their destination's accept_within, alerted once each.",
        s.overdue
            .iter()
            .map(|(d, n)| (format!("destination=\"{}\"", label(d)), *n))
            .collect(),
    );
    family(
        "pnp_destination_failing",
        "gauge",
        "1 while a destination is queuing or dead-lettering.",
        s.failing
            .iter()
            .map(|(d, f)| (format!("destination=\"{}\"", label(d)), u64::from(*f)))
            .collect(),
    );
    family(
        "pnp_referrals",
        "gauge",
        "Consented referrals now, by destination and lifecycle status.",
        per_destination(&s.referrals, "status"),
    );
    family(
        "pnp_referral_answers_total",
        "counter",
        "Providers' answers to referrals, by channel, kind and outcome.",
        s.answers
            .iter()
            .map(|((c, k, o), v)| (format!("channel=\"{c}\",kind=\"{k}\",outcome=\"{o}\""), *v))
            .collect(),
    );
    family(
        "pnp_pushed_records_total",
        "counter",
        "Records pushed to the service (API or live source), by pipeline and outcome.",
        s.pushed
            .iter()
            .map(|((p, k), v)| {
                (
                    format!("pipeline=\"{}\",outcome=\"{}\"", label(p), label(k)),
                    *v,
                )
            })
            .collect(),
    );
    let per_source = |f: &dyn Fn(&SourceState) -> Option<u64>| -> Vec<(String, u64)> {
        s.sources
            .iter()
            .filter_map(|(p, st)| {
                f(st).map(|v| (format!("pipeline=\"{}\",kind=\"{}\"", label(p), st.kind), v))
            })
            .collect()
    };
    family(
        "pnp_source_up",
        "gauge",
        "1 while a live source runs (0 once it stopped), by pipeline and kind.",
        per_source(&|st| Some(u64::from(st.state != "stopped"))),
    );
    family(
        "pnp_source_backing_off",
        "gauge",
        "1 while a live source's peer fails and it backs off.",
        per_source(&|st| Some(u64::from(st.state == "backing_off"))),
    );
    family(
        "pnp_source_connections",
        "gauge",
        "Open connections of a listening source (MLLP).",
        per_source(&|st| st.connections),
    );
    family(
        "pnp_source_lag",
        "gauge",
        "Records not yet consumed (Kafka: high watermark minus position, summed over partitions).",
        per_source(&|st| st.lag.map(|l| l.max(0) as u64)),
    );
    family(
        "pnp_source_errors_total",
        "counter",
        "Failed attempts of a live source (connections refused, pages failing, broker errors).",
        per_source(&|st| Some(st.errors)),
    );
    o
}

/// The plain metrics listener's bounds: few connections (a scraper needs one), so that
/// strangers can never hold the descriptors the gateway's ingest and delivery need; no request
/// body is read.
pub fn limits() -> crate::server::Limits {
    crate::server::Limits {
        max_connections: 16,
        max_body: 0,
        max_inflight: 0,
        ..Default::default()
    }
}

/// The Prometheus text of `metrics`, as `GET /metrics` answers it.
pub fn response(metrics: &Metrics) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        render(&metrics.snapshot()),
    )
        .into_response()
}

/// `GET /metrics` alone, for a listener of its own (no authentication: bind it where only the
/// scraper reaches).
pub fn router(metrics: Arc<Metrics>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move { response(&m) }
        }),
    )
}

/// Serves `GET /metrics` on `listen` from a thread of its own, under [`limits`]; returns the
/// bound address.
pub fn serve(listen: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let limits = limits();
    let router = crate::server::layers::bounded(router(metrics), &limits);
    crate::server::spawn(listener, "pnp-metrics", None, limits, router)?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_labelled_families() {
        let mut s = Snapshot {
            records: 310,
            ..Default::default()
        };
        s.deliveries
            .insert(("dhhr-program".into(), "delivered".into()), 29);
        s.failing.insert("prestera".into(), true);
        s.rejected.insert("bad\"kind".into(), 1);
        s.answers.insert(("hl7_mllp", "rri", "recorded"), 2);
        let text = render(&s);
        assert!(text.contains(
            "pnp_referral_answers_total{channel=\"hl7_mllp\",kind=\"rri\",outcome=\"recorded\"} 2\n"
        ));
        assert!(text.contains("pnp_records_read_total 310\n"));
        assert!(text.contains(
            "pnp_deliveries_total{destination=\"dhhr-program\",outcome=\"delivered\"} 29\n"
        ));
        assert!(text.contains("pnp_destination_failing{destination=\"prestera\"} 1\n"));
        assert!(text.contains("kind=\"bad\\\"kind\""));
        assert!(text.contains("# TYPE pnp_outbox_rows gauge\n"));
    }

    #[test]
    fn a_stopped_source_is_down_and_a_source_without_lag_shows_none() {
        let mut s = Snapshot::default();
        s.sources.insert(
            "polled".into(),
            SourceState {
                kind: "http_poll",
                state: "stopped",
                errors: 3,
                ..Default::default()
            },
        );
        let text = render(&s);
        assert!(text.contains("pnp_source_up{pipeline=\"polled\",kind=\"http_poll\"} 0\n"));
        assert!(
            text.contains("pnp_source_errors_total{pipeline=\"polled\",kind=\"http_poll\"} 3\n")
        );
        assert!(!text.contains("pnp_source_lag{"));
    }
}
