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

    pub fn snapshot(&self) -> Snapshot {
        self.now.lock().map(|s| s.clone()).unwrap_or_default()
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
        let text = render(&s);
        assert!(text.contains("pnp_records_read_total 310\n"));
        assert!(text.contains(
            "pnp_deliveries_total{destination=\"dhhr-program\",outcome=\"delivered\"} 29\n"
        ));
        assert!(text.contains("pnp_destination_failing{destination=\"prestera\"} 1\n"));
        assert!(text.contains("kind=\"bad\\\"kind\""));
        assert!(text.contains("# TYPE pnp_outbox_rows gauge\n"));
    }
}
