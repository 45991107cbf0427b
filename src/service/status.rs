//! The operator's status page (`GET /status`, scope `admin`): HTML rendered on the server,
//! refreshing itself every 5 seconds, no script. Per pipeline its last file and push and what was
//! read and rejected by kind; each live source's state; per destination what waits, what was
//! dead-lettered, the oldest pending age, whether it is failing and the kind of its last error;
//! referrals still awaiting acceptance after their destination's `accept_within` (else 72 hours); alerts (failing destinations, overdue
//! referrals: docs/closed-loop.md, "Follow-up"). Ids, kinds, counts and times only: no value
//! of any record, no file name.

use super::api::App;
use super::auth::Caller;
use crate::config::server::Scope;
use crate::store::{Result, Store};
use axum::extract::{Extension, State};
use axum::response::{Html, IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Referrals still `sent` after this long are listed as awaiting acceptance, unless their
/// destination sets its own `accept_within`.
const AWAITING_HOURS: i64 = 72;

#[derive(Debug, Default)]
struct Pipeline {
    last_file: Option<String>,
    last_push: Option<String>,
    records: u64,
    rejected: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Destination {
    counts: BTreeMap<String, u64>,
    oldest_pending: Option<String>,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Facts {
    pipelines: BTreeMap<String, Pipeline>,
    destinations: BTreeMap<String, Destination>,
    awaiting: Vec<(String, String, String)>,
    /// Overdue referrals alerted and still `sent` (id, destination, overdue since).
    overdue: Vec<(String, String, String)>,
}

fn gather(store: &Store, gw: &crate::config::Gateway) -> Result<Facts> {
    let mut f = Facts::default();
    let conn = &store.conn;
    for p in &gw.pipelines {
        let a = &p.adapter.name;
        let one = |sql: &str| -> rusqlite::Result<Option<String>> {
            conn.query_row(sql, [a], |r| r.get(0))
        };
        let mut pl = Pipeline {
            last_file: one(
                "SELECT max(updated_at) FROM ingest_ledger WHERE adapter = ?1 AND path NOT LIKE '%/spool/%'",
            )?,
            records: conn.query_row(
                "SELECT coalesce(sum(record), 0) FROM ingest_ledger WHERE adapter = ?1",
                [a],
                |r| r.get::<_, i64>(0),
            )? as u64,
            ..Default::default()
        };
        pl.last_push = conn.query_row(
            "SELECT max(at) FROM pushes WHERE pipeline = ?1",
            [&p.id],
            |r| r.get(0),
        )?;
        let mut st = conn.prepare_cached(
            "SELECT kind, count(*) FROM quarantine WHERE adapter = ?1 GROUP BY kind ORDER BY kind",
        )?;
        for row in st.query_map([a], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (k, n) = row?;
            pl.rejected.insert(k, n as u64);
        }
        f.pipelines.insert(p.id.clone(), pl);
    }
    for d in gw.deliveries.keys() {
        f.destinations.insert(d.clone(), Destination::default());
    }
    for (d, status, n) in store.outbox_counts()? {
        f.destinations
            .entry(d)
            .or_default()
            .counts
            .insert(status, n);
    }
    for (d, dest) in f.destinations.iter_mut() {
        dest.oldest_pending = conn.query_row(
            "SELECT min(created_at) FROM outbox WHERE destination = ?1 AND status = 'pending'",
            [d],
            |r| r.get(0),
        )?;
        let err: Option<String> = conn
            .query_row(
                "SELECT last_error FROM outbox WHERE destination = ?1 AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1",
                [d],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        // The kind only: what precedes the first colon of our own classification.
        dest.last_error = err.map(|e| e.split(':').next().unwrap_or_default().trim().to_string());
    }
    let now = chrono::Utc::now();
    for r in store.referrals()? {
        // The destination's own `accept_within` when it has one.
        let within = gw
            .deliveries
            .get(&r.destination)
            .and_then(|d| d.accept_within)
            .and_then(|w| chrono::Duration::from_std(w).ok())
            .unwrap_or_else(|| chrono::Duration::hours(AWAITING_HOURS));
        let old =
            chrono::DateTime::parse_from_rfc3339(&r.updated_at).is_ok_and(|t| t < now - within);
        if r.status == crate::policy::lifecycle::Status::Sent && old {
            f.awaiting.push((r.id, r.destination, r.updated_at));
        }
    }
    f.overdue = store.alerted_still_sent(50)?;
    Ok(f)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn age(since: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(since) {
        Ok(t) => {
            let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .num_seconds()
                .max(0);
            match secs {
                s if s < 120 => format!("{s} s"),
                s if s < 7200 => format!("{} min", s / 60),
                s if s < 172_800 => format!("{} h", s / 3600),
                s => format!("{} days", s / 86_400),
            }
        }
        Err(_) => "?".into(),
    }
}

/// A table of text cells (escaped here).
fn table(id: &str, title: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("<h2 id=\"{id}\">{}</h2>\n<table><thead><tr>", esc(title));
    for h in head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{}</td>", esc(c));
        }
        s.push_str("</tr>");
    }
    if rows.is_empty() {
        let _ = write!(s, "<tr><td colspan=\"{}\">none</td></tr>", head.len());
    }
    s.push_str("</tbody></table>\n");
    s
}

fn render(f: &Facts, app: &App) -> String {
    let snap = app.metrics.snapshot();
    let dash = || "–".to_string();
    let mut body = String::from("<h1>pnp-gateway status</h1>\n");
    let ready = app.health.components().iter().all(|(_, r)| r.is_ok());
    let _ = writeln!(
        body,
        "<p class=\"note\" id=\"overall\">{} · refreshed every 5 s · {}</p>",
        if ready { "ready" } else { "NOT READY" },
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    );
    let rows: Vec<Vec<String>> = f
        .pipelines
        .iter()
        .map(|(id, p)| {
            let rejected: u64 = p.rejected.values().sum();
            let kinds = p
                .rejected
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                id.clone(),
                p.last_file
                    .as_deref()
                    .map(age)
                    .map(|a| format!("{a} ago"))
                    .unwrap_or_else(dash),
                p.last_push
                    .as_deref()
                    .map(age)
                    .map(|a| format!("{a} ago"))
                    .unwrap_or_else(dash),
                p.records.to_string(),
                if kinds.is_empty() {
                    rejected.to_string()
                } else {
                    format!("{rejected} ({kinds})")
                },
            ]
        })
        .collect();
    body += &table(
        "pipelines",
        "Pipelines",
        &[
            "pipeline",
            "last file",
            "last push",
            "records read",
            "rejected (by kind)",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = app
        .health
        .sources()
        .iter()
        .map(|(id, s)| {
            vec![
                id.clone(),
                s.kind.to_string(),
                s.state.to_string(),
                s.connections.map(|c| c.to_string()).unwrap_or_else(dash),
                s.last_error.clone().unwrap_or_else(dash),
            ]
        })
        .collect();
    body += &table(
        "sources",
        "Live sources",
        &["pipeline", "kind", "state", "connections", "last error"],
        &rows,
    );
    let rows: Vec<Vec<String>> = f
        .destinations
        .iter()
        .map(|(id, d)| {
            let n = |s: &str| d.counts.get(s).copied().unwrap_or(0).to_string();
            let failing = snap.failing.get(id).copied().unwrap_or(false);
            vec![
                id.clone(),
                if failing {
                    "FAILING".into()
                } else {
                    "ok".into()
                },
                n("pending"),
                n("delivered"),
                n("dead"),
                d.oldest_pending.as_deref().map(age).unwrap_or_else(dash),
                d.last_error.clone().unwrap_or_else(dash),
            ]
        })
        .collect();
    body += &table(
        "destinations",
        "Destinations",
        &[
            "destination",
            "state",
            "pending",
            "delivered",
            "dead-lettered",
            "oldest pending",
            "last error",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = f
        .awaiting
        .iter()
        .map(|(id, d, since)| vec![id.clone(), d.clone(), format!("{} ago", age(since))])
        .collect();
    body += &table(
        "awaiting",
        &format!(
            "Referrals awaiting acceptance (after their destination's accept_within, else {AWAITING_HOURS} h)"
        ),
        &["referral", "destination", "sent"],
        &rows,
    );
    let alerts: Vec<Vec<String>> = snap
        .failing
        .iter()
        .filter(|(_, f)| **f)
        .map(|(d, _)| {
            vec![format!(
                "destination {d} is failing: deliveries are retried or dead-lettered"
            )]
        })
        .chain(f.overdue.iter().map(|(id, d, since)| {
            vec![format!(
                "referral {id} to {d} is overdue (for {}): not accepted within its accept_within",
                age(since)
            )]
        }))
        .collect();
    body += &table("alerts", "Alerts", &["alert"], &alerts);
    crate::report::render::html::page("pnp-gateway status", &body).replacen(
        "<head>",
        "<head><meta http-equiv=\"refresh\" content=\"5\">",
        1,
    )
}

/// `GET /status`.
pub(super) async fn page(State(app): State<App>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(r) = caller.require(&Scope::Admin) {
        return r;
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let gw = app.gw.clone();
    if let Err(r) = app.queue(super::engine::Command::Store(Box::new(move |store, _| {
        let _ = reply.send(gather(store, &gw));
    }))) {
        return r;
    }
    match answer.await {
        Ok(Ok(f)) => Html(render(&f, &app)).into_response(),
        _ => crate::server::layers::busy("the gateway cannot read its state now; try again"),
    }
}
