//! Polling providers' FHIR servers (`[destination.poll_status]`; docs/closed-loop.md, "Polling
//! a provider's FHIR server"). A provider that keeps the Task on its own FHIR server, and does
//! not tell the gateway, is asked: for each of the destination's referrals that is delivered
//! and not in a final status, `GET {url}/Task?identifier=urn:pnp-gateway:idempotency-key|{id}`
//! (the identifier the transaction created the Task with), every `every`. The Task's status
//! code is the lifecycle's (below); a change is recorded through the engine (the one writer)
//! like a provider's own report, by `poll:<destination>`, and a referral in a final status is
//! no longer asked about.
//!
//! Bounded: one thread per polled destination, one request at a time, `timeout_ms` each, a
//! Bundle of at most 1 MiB, at most `max_per_pass` Tasks a pass (those asked longest ago first).
//! A failing server is backed off (from 0.5 s, doubling up to `every`) with one warning when it
//! starts failing and one line when it recovers, as the HTTP poll source does; its state is on
//! `/readyz` and the status page as the live source `poll:<destination>`. Only failures that say
//! the server is down or refuses the gateway (see [`Failure::ends_the_pass`]) end a pass: an
//! answer about one Task that cannot be used (a 404, a Bundle that is not one) is counted,
//! warned about once per referral, and the pass goes on to the destination's other referrals,
//! so that one removed Task never stops the loop for everyone else.
//!
//! Only codes are read from a Task (its `status`, a `statusReason` coding's code when it is
//! code-shaped, `lastModified`): never its text, which could name someone. Nothing of a Task,
//! and neither the URL nor the auth header, is logged.

use super::engine::Command;
use super::{Health, ServiceError};
use crate::config::Gateway;
use crate::config::followup::PollStatus;
use crate::policy::lifecycle::Status;
use crate::store::Store;
use crate::store::referrals::Refusal;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

/// The Task's identifier system (the FHIR delivery's, src/deliver/fhir.rs).
pub const SYSTEM: &str = "urn:pnp-gateway:idempotency-key";

/// The first backoff after an error; it doubles up to `every`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The largest searchset Bundle read: one Task is a few KiB.
const MAX_BUNDLE: u64 = 1 << 20;

/// The reason recorded with an acceptance the poll did not see but the Task's later status
/// implies (see [`steps`]).
pub const IMPLIED: &str = "implied";

/// The lifecycle status a Task's status code stands for; `None` for the codes that are no
/// answer yet (`draft`, `requested`, `received`), `entered-in-error`, and unknown codes.
/// `ready` (accepted, ready to be performed, nothing done yet) is an acceptance.
pub fn lifecycle_of(task_status: &str) -> Option<Status> {
    match task_status {
        "ready" => Some(Status::Accepted),
        "draft" | "requested" | "received" | "entered-in-error" => None,
        s if s.contains('_') => None, // FHIR's codes are kebab-case: not a guess at spellings
        s => Status::parse(s).filter(|s| !matches!(s, Status::Queued | Status::Sent)),
    }
}

/// The steps to record for a referral now `current` whose Task says `to`: none when it says
/// the same; the acceptance first when the Task moved past it between two polls (a Task
/// in progress, on hold, completed or failed was accepted: FHIR's Task state machine passes
/// through it), marked [`IMPLIED`], then `to`.
pub fn steps(current: Status, to: Status) -> Vec<(Status, bool)> {
    use Status::*;
    if current == to {
        return Vec::new();
    }
    match (current, to) {
        (Sent, to) if to != Accepted && to.follows_acceptance() => {
            vec![(Accepted, true), (to, false)]
        }
        _ => vec![(to, false)],
    }
}

/// What a Task says, codes only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    pub status: String,
    pub reason: Option<String>,
    /// `lastModified`, as RFC 3339 (milliseconds, UTC) when it parses.
    pub at: Option<String>,
}

/// An error's kind: what the health board and the warning say (never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl Failure {
    /// Whether the failure is the server's rather than one Task's, so the pass ends and the
    /// server is backed off: anything but a 4xx about the request (other than 401, 403, 407
    /// and 429, which say the gateway is refused or too fast, whatever the Task) and an answer
    /// that does not hold one usable Task. Unknown kinds end the pass: backing off is the safe
    /// side.
    pub fn ends_the_pass(&self) -> bool {
        let one_task = [
            "bundle_too_large",
            "not_json",
            "not_a_bundle",
            "several_tasks_for_one_referral",
            "task_without_status",
        ];
        if one_task.contains(&self.0.as_str()) {
            return false;
        }
        match self
            .0
            .strip_prefix("status_")
            .and_then(|c| c.parse::<u16>().ok())
        {
            Some(401 | 403 | 407 | 429) => true,
            Some(c) => !(400..500).contains(&c),
            None => true,
        }
    }
}

/// The Task with identifier `SYSTEM|key` in a searchset Bundle: `None` when there is none (the
/// server does not hold it, or not yet); an error when the answer is no Bundle or holds more
/// than one such Task.
pub fn task_of(bundle: &Value, key: &str) -> Result<Option<TaskState>, Failure> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(Failure("not_a_bundle".into()));
    }
    let mut found = bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"))
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Task"))
        .filter(|r| {
            r.get("identifier")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|i| {
                    i.get("system") == Some(&SYSTEM.into()) && i.get("value") == Some(&key.into())
                })
        });
    let Some(task) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(Failure("several_tasks_for_one_referral".into()));
    }
    let status = task
        .get("status")
        .and_then(Value::as_str)
        .filter(|s| code_shaped(s))
        .ok_or_else(|| Failure("task_without_status".into()))?;
    let reason = task
        .pointer("/statusReason/coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("code").and_then(Value::as_str))
        .find(|c| code_shaped(c))
        .map(str::to_string);
    let at = task
        .get("lastModified")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        });
    Ok(Some(TaskState {
        status: status.to_string(),
        reason,
        at,
    }))
}

/// A code (letters, digits, `-`, `_`; at most 64), as the JSON channel takes a reason.
fn code_shaped(s: &str) -> bool {
    super::referrals::reason_ok(s)
}

/// Starts a poll thread for each destination with `poll_status`.
pub(super) fn start_all(
    gw: &Arc<Gateway>,
    engine: &SyncSender<Command>,
    health: &Arc<Health>,
    stop: &crate::server::ShutdownSignal,
) -> Result<(), ServiceError> {
    for (dest, d) in &gw.deliveries {
        let Some(cfg) = &d.poll_status else { continue };
        let err =
            |m: String| ServiceError::Source(format!("destination `{dest}` poll_status: {m}"));
        let identity = match &d.kind {
            crate::config::gateway::DeliveryKind::Webhook { http, .. } => {
                http.identity_file.clone()
            }
            _ => None,
        };
        let client = crate::deliver::webhook::client(
            cfg.ca_file.as_deref(),
            identity.as_deref(),
            cfg.timeout,
        )
        .map_err(err)?;
        let auth = match &cfg.auth_header_file {
            Some(f) => Some(super::sources::read_auth_header(f).map_err(err)?),
            None => None,
        };
        let store =
            Store::open(&gw.store_path).map_err(|e| err(format!("opening the store: {e}")))?;
        let poller = Poller {
            source: format!("poll:{dest}"),
            dest: dest.clone(),
            cfg: cfg.clone(),
            client,
            auth,
            engine: engine.clone(),
            health: health.clone(),
            stop: stop.clone(),
            store,
            asked: HashMap::new(),
            refused: HashMap::new(),
            unreadable: HashMap::new(),
        };
        health.source(&poller.source, |s| {
            s.kind = "fhir_task_poll";
            s.state = "polling";
        });
        std::thread::Builder::new()
            .name(format!("pnp-poll-{dest}"))
            .spawn(move || poller.run())
            .map_err(|e| err(format!("cannot start the poll thread: {}", e.kind())))?;
        tracing::info!(destination = %dest, "polling the provider's FHIR server for Task status");
    }
    Ok(())
}

struct Poller {
    /// Its name on the health board: `poll:<destination>`, also who reports the changes.
    source: String,
    dest: String,
    cfg: PollStatus,
    client: reqwest::blocking::Client,
    auth: Option<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    engine: SyncSender<Command>,
    health: Arc<Health>,
    stop: crate::server::ShutdownSignal,
    /// A connection of its own to read which referrals are open; writes go to the engine.
    store: Store,
    /// When each open referral's Task was last asked for.
    asked: HashMap<String, Instant>,
    /// The status last refused per referral (an illegal step): warned about once.
    refused: HashMap<String, Status>,
    /// The failure kind of each referral whose Task could not be read on its last ask (a
    /// failure of that Task only): warned about once per kind.
    unreadable: HashMap<String, String>,
}

impl Poller {
    fn run(mut self) {
        let mut backoff = FIRST_BACKOFF.min(self.cfg.every);
        let mut failing: Option<Failure> = None;
        while !self.stop.is_set() {
            let wait = match self.pass() {
                Ok(()) => {
                    if failing.take().is_some() {
                        tracing::info!(destination = %self.dest, "polling the provider's FHIR server recovered");
                    }
                    backoff = FIRST_BACKOFF.min(self.cfg.every);
                    // A Task that still cannot be read stays the last error shown.
                    let clear = self.unreadable.is_empty();
                    self.health.source(&self.source, |s| {
                        s.state = "polling";
                        if clear {
                            s.last_error = None;
                        }
                    });
                    self.cfg.every
                }
                Err(_) if self.stop.is_set() => break,
                Err(f) => {
                    if failing.is_none() {
                        tracing::warn!(destination = %self.dest, error = %f.0, "polling the provider's FHIR server fails; backing off until it recovers");
                    }
                    self.health.source(&self.source, |s| {
                        s.state = "backing_off";
                        s.failed(f.0.clone());
                    });
                    failing = Some(f);
                    let w = backoff;
                    backoff = (backoff * 2).min(self.cfg.every);
                    w
                }
            };
            self.sleep(wait);
        }
        self.health.source(&self.source, |s| s.state = "stopped");
    }

    /// Sleeps `d`, waking early when the service stops.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stop.is_set() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }

    /// Asks for the Tasks of up to `max_per_pass` open referrals, those asked longest ago
    /// first; a failure of the server ends the pass (it is backed off), one of a Task is
    /// counted and the pass goes on.
    fn pass(&mut self) -> Result<(), Failure> {
        let open = self
            .store
            .open_referrals(&self.dest)
            .map_err(|_| Failure("store".into()))?;
        let ids: std::collections::HashSet<&str> = open.iter().map(|(id, _)| id.as_str()).collect();
        self.asked.retain(|id, _| ids.contains(id.as_str()));
        self.refused.retain(|id, _| ids.contains(id.as_str()));
        self.unreadable.retain(|id, _| ids.contains(id.as_str()));
        let mut due = open.clone();
        // Never asked first, then the longest ago.
        due.sort_by_key(|(id, _)| self.asked.get(id).copied());
        due.truncate(self.cfg.max_per_pass);
        // A server that fails every Task of a pass with a failure of one Task (a 404 for each,
        // a login page instead of a Bundle) is more likely wrong as a whole: the pass then
        // ends in the first of those failures, and the server is backed off and shown failing.
        let (mut read_one, mut first_failure) = (false, None);
        for (id, current) in due {
            if self.stop.is_set() {
                break;
            }
            let fetched = self.fetch(&id);
            if let Err(f) = &fetched
                && f.ends_the_pass()
            {
                return Err(f.clone());
            }
            self.asked.insert(id.clone(), Instant::now());
            let task = match fetched {
                Ok(t) => {
                    read_one = true;
                    self.unreadable.remove(&id);
                    t
                }
                Err(f) => {
                    self.health.source(&self.source, |s| s.failed(f.0.clone()));
                    first_failure.get_or_insert_with(|| f.clone());
                    if self.unreadable.insert(id.clone(), f.0.clone()).as_ref() != Some(&f.0) {
                        tracing::warn!(destination = %self.dest, referral = %id, error = %f.0, "a polled Task cannot be read; the other referrals are still asked for");
                    }
                    continue;
                }
            };
            let Some(task) = task else { continue };
            let Some(to) = lifecycle_of(&task.status) else {
                continue;
            };
            let steps = steps(current, to);
            if steps.is_empty() || self.refused.get(&id) == Some(&to) {
                continue;
            }
            self.record(&id, steps, &task)?;
        }
        match first_failure {
            Some(f) if !read_one => Err(f),
            _ => Ok(()),
        }
    }

    fn fetch(&self, key: &str) -> Result<Option<TaskState>, Failure> {
        let url = crate::service::sources::render_url(
            &format!("{}/Task?identifier={{cursor}}", self.cfg.url),
            &format!("{SYSTEM}|{key}"),
        );
        let mut req = self
            .client
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/fhir+json");
        if let Some((n, v)) = &self.auth {
            req = req.header(n.clone(), v.clone());
        }
        let resp = req.send().map_err(|e| {
            Failure(if let Some(tls) = crate::tls::failure(&e) {
                tls
            } else if e.is_timeout() {
                "timeout".into()
            } else if e.is_connect() {
                "connect".into()
            } else {
                "request".into()
            })
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Failure(format!("status_{}", status.as_u16())));
        }
        let mut body = Vec::new();
        resp.take(MAX_BUNDLE + 1)
            .read_to_end(&mut body)
            .map_err(|_| Failure("body".into()))?;
        if body.len() as u64 > MAX_BUNDLE {
            return Err(Failure("bundle_too_large".into()));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|_| Failure("not_json".into()))?;
        task_of(&v, key)
    }

    /// Records the steps through the engine and waits for its commit. A refused step (not a
    /// legal next one) is warned about once per referral and status, and changes nothing.
    fn record(
        &mut self,
        id: &str,
        steps: Vec<(Status, bool)>,
        task: &TaskState,
    ) -> Result<(), Failure> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let (key, dest, by) = (id.to_string(), self.dest.clone(), self.source.clone());
        let at = task.at.clone().unwrap_or_else(|| {
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        });
        let reason = task.reason.clone();
        let cmd = Command::Store(Box::new(move |store, keys| {
            let mut out = Ok(None);
            for (to, implied) in steps {
                // Reported meanwhile through another channel: not recorded twice.
                match store.referral(&key) {
                    Ok(Some(r)) if r.status == to => continue,
                    _ => {}
                }
                let why = if implied {
                    Some(IMPLIED)
                } else {
                    reason.as_deref()
                };
                match store.report_referral(
                    &keys.audit,
                    &key,
                    std::slice::from_ref(&dest),
                    to,
                    why,
                    &at,
                    &by,
                ) {
                    Ok(Ok(_)) => {}
                    Ok(Err(refusal)) => {
                        out = Ok(Some((to, refusal)));
                        break;
                    }
                    Err(e) => {
                        out = Err(e);
                        break;
                    }
                }
            }
            let _ = reply.send(out);
        }));
        self.engine
            .send(cmd)
            .map_err(|_| Failure("stopping".into()))?;
        match answer.blocking_recv() {
            Ok(Ok(None)) => {
                tracing::info!(destination = %self.dest, referral = %id, status = %task.status, "a polled Task's status recorded");
                self.health.answer("fhir_poll", "task", "recorded");
                Ok(())
            }
            Ok(Ok(Some((to, refusal)))) => {
                let why = match refusal {
                    Refusal::Illegal(why) => why,
                    Refusal::NoSuchReferral => "no such referral".into(),
                    Refusal::NotYours => "another destination's referral".into(),
                };
                if self.refused.insert(id.to_string(), to) != Some(to) {
                    // Counted once, as warned: the same refused status is read at every pass.
                    self.health.answer("fhir_poll", "task", "rejected");
                    tracing::warn!(destination = %self.dest, referral = %id, status = to.as_str(), reason = %why, "a polled Task's status is not a legal next step; not recorded");
                }
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::error!(destination = %self.dest, error = %e, "a polled Task's status was not stored; asked again");
                Err(Failure("store".into()))
            }
            Err(_) => Err(Failure("stopping".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn task_codes_map_to_the_lifecycle() {
        assert_eq!(lifecycle_of("accepted"), Some(Status::Accepted));
        assert_eq!(lifecycle_of("ready"), Some(Status::Accepted));
        assert_eq!(lifecycle_of("in-progress"), Some(Status::InProgress));
        assert_eq!(lifecycle_of("completed"), Some(Status::Completed));
        assert_eq!(lifecycle_of("cancelled"), Some(Status::Cancelled));
        for none in [
            "requested",
            "received",
            "draft",
            "entered-in-error",
            "sent",
            "queued",
            "in_progress",
            "Jane",
        ] {
            assert_eq!(lifecycle_of(none), None, "{none}");
        }
    }

    #[test]
    fn only_the_servers_failures_end_a_pass() {
        let ends = |k: &str| Failure(k.into()).ends_the_pass();
        for server in [
            "connect",
            "timeout",
            "request",
            "body",
            "status_500",
            "status_503",
            "status_401",
            "status_403",
            "status_429",
            "tls_unknown_ca",
        ] {
            assert!(ends(server), "{server}");
        }
        for one_task in [
            "status_404",
            "status_410",
            "status_400",
            "not_json",
            "not_a_bundle",
            "several_tasks_for_one_referral",
            "task_without_status",
            "bundle_too_large",
        ] {
            assert!(!ends(one_task), "{one_task}");
        }
    }

    #[test]
    fn an_acceptance_the_poll_missed_is_implied() {
        use Status::*;
        assert_eq!(
            steps(Sent, Completed),
            vec![(Accepted, true), (Completed, false)]
        );
        assert_eq!(steps(Sent, Accepted), vec![(Accepted, false)]);
        assert_eq!(steps(Accepted, Completed), vec![(Completed, false)]);
        assert!(steps(Accepted, Accepted).is_empty());
        assert_eq!(steps(Sent, Rejected), vec![(Rejected, false)]);
    }

    #[test]
    fn the_task_is_read_by_its_identifier_and_codes_only() {
        let task = |key: &str, status: &str| {
            json!({"resource": {"resourceType": "Task", "status": status,
                "identifier": [{"system": SYSTEM, "value": key}],
                "statusReason": {"coding": [{"code": "Jane Doe's choice"}, {"code": "patient-declined"}], "text": "free text"},
                "lastModified": "2026-12-02T10:00:00-05:00"}})
        };
        let b = json!({"resourceType": "Bundle", "type": "searchset", "entry": [task("k2", "failed"), task("k1", "accepted")]});
        assert_eq!(
            task_of(&b, "k1").unwrap(),
            Some(TaskState {
                status: "accepted".into(),
                reason: Some("patient-declined".into()),
                at: Some("2026-12-02T15:00:00.000Z".into()),
            })
        );
        assert_eq!(task_of(&b, "k3").unwrap(), None);
        let twice = json!({"resourceType": "Bundle", "entry": [task("k1", "accepted"), task("k1", "completed")]});
        assert!(task_of(&twice, "k1").is_err());
        assert!(task_of(&json!({"resourceType": "OperationOutcome"}), "k1").is_err());
    }
}
