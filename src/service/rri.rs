//! Providers' HL7 v2 answers to referrals: an RRI^I12 (return referral information) or an
//! application ACK for the REF^I12 the gateway sent, over the MLLP listener (`referral_answers`)
//! or as an HTTPS body (`POST /v1/referrals/hl7`). Either way the sender must be a client with
//! the scope `provider:<destination>` of the referral's destination; the message is read
//! (`formats::hl7_reply`), its meaning decided (`policy::hl7_answer`), the step recorded by the
//! engine like a JSON report, and the answer is an HL7 ACK sent after the commit: AA recorded
//! (or nothing to record), AE with an ERR naming the field and a code (never a received value),
//! AR when it cannot be taken now or the sender is not a provider. docs/closed-loop.md.

use super::auth::Caller;
use super::engine::Command;
use super::sources::mllp::{Code, Msh, build_ack, escape, parse_msh};
use crate::config::server::{Credential, Scope};
use crate::formats::hl7_reply::{self, ReplyKind};
use crate::policy::hl7_answer::{self, Step};
use crate::policy::lifecycle::Status;
use crate::store::referrals::Refusal;
use axum::http::StatusCode;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

/// The content type of an ER7 (pipe-delimited) HL7 v2 message over HTTP.
pub const ER7: &str = "x-application/hl7-v2+er7";

/// Who sent an answer: a provider client (its id and destinations), or why not (a kind).
pub(crate) type Sender = Result<(String, Vec<String>), &'static str>;

/// The destinations a client reports for (its `provider:` scopes).
fn destinations(scopes: &[Scope]) -> Vec<String> {
    scopes
        .iter()
        .filter_map(|s| match s {
            Scope::Provider(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

/// An API caller as a sender.
pub(crate) fn sender_of(caller: &Caller) -> Sender {
    let d = destinations(&caller.scopes);
    if d.is_empty() {
        Err("not_a_provider")
    } else {
        Ok((caller.id.clone(), d))
    }
}

/// An MLLP connection's sender: the `[[client]]` whose `cert_subject` is its certificate's
/// common name (as the API names a client by its certificate).
fn sender_by_certificate(clients: &[crate::config::server::Client], cn: Option<&str>) -> Sender {
    let cn = cn.ok_or("no_client_certificate")?;
    let c = clients
        .iter()
        .find(|c| matches!(&c.credential, Credential::CertSubject(s) if s == cn))
        .ok_or("unknown_client")?;
    let d = destinations(&c.scopes);
    if d.is_empty() {
        Err("not_a_provider")
    } else {
        Ok((c.id.clone(), d))
    }
}

/// What became of an answer: the ACK, the HTTP status the same outcome takes over HTTPS, and
/// the outcome's name for the metrics ([`crate::metrics::Metrics::answer`]).
pub(crate) struct Answer {
    pub ack: String,
    pub http: StatusCode,
    pub outcome: &'static str,
}

/// A refusal: the ACK code, the field (`RF1-1`; empty for none), the HL7 error code (table
/// 0357), our kind and reason (no received value), and the HTTP status.
struct Refuse<'a> {
    code: Code,
    field: &'a str,
    hl7: u16,
    kind: &'a str,
    reason: &'a str,
    http: StatusCode,
}

fn refuse(msh: &Msh, r: Refuse) -> Answer {
    // Our kind and the field only: never a value of the message.
    tracing::info!(
        kind = r.kind,
        field = r.field,
        "a provider's HL7 answer was refused"
    );
    // An AR that asks for the message again (a full queue, a stop, a store failure, a delivery
    // not yet recorded) is deferred, not refused: the same answer is expected back.
    let outcome = match (r.code, r.http) {
        (Code::Reject, StatusCode::SERVICE_UNAVAILABLE | StatusCode::CONFLICT) => "deferred",
        _ => "rejected",
    };
    Answer {
        ack: build_ack(msh, r.code, None) + &err_segment(r.field, r.hl7, r.kind, r.reason),
        http: r.http,
        outcome,
    }
}

/// An answer's kind as a metrics label: its MSH-9.1 as one of our own names, never as sent.
fn kind_label(msg: &[u8]) -> &'static str {
    match hl7_reply::message_type(msg).as_deref() {
        Some("RRI") => "rri",
        Some("ACK") => "ack",
        _ => "other",
    }
}

/// The text of HL7 table 0357's codes used here.
fn code_text(code: u16) -> &'static str {
    match code {
        101 => "Required field missing",
        102 => "Data type error",
        103 => "Table value not found",
        200 => "Unsupported message type",
        204 => "Unknown key identifier",
        _ => "Application internal error",
    }
}

/// ERR (v2.5): ERR-2 the location (`RF1^1^1`), ERR-3 the HL7 error code, ERR-4 severity E,
/// ERR-5 our kind (a local code), ERR-8 the field, kind and reason for a person.
fn err_segment(field: &str, hl7: u16, kind: &str, reason: &str) -> String {
    let location = field
        .split_once('-')
        .map(|(seg, n)| format!("{seg}^1^{n}"))
        .unwrap_or_default();
    let text = if field.is_empty() {
        format!("{kind}: {reason}")
    } else {
        format!("field {field}: {kind}: {reason}")
    };
    format!(
        "ERR||{location}|{hl7}^{}^HL70357|E|{}^^L|||{}\r",
        code_text(hl7),
        escape(kind),
        escape(&text)
    )
}

/// MSH-7 as RFC 3339 when it carries its offset (`YYYYMMDDHHMM[SS[.S…]]±ZZZZ`); a time
/// without one is not guessed at.
fn hl7_time(ts: &str) -> Option<String> {
    let (main, zone) = ts.split_at(ts.find(['+', '-'])?);
    let main = main.split('.').next().unwrap_or(main);
    let t = match main.len() {
        14 => chrono::DateTime::parse_from_str(&format!("{main}{zone}"), "%Y%m%d%H%M%S%z"),
        12 => chrono::DateTime::parse_from_str(&format!("{main}00{zone}"), "%Y%m%d%H%M%S%z"),
        _ => return None,
    }
    .ok()?;
    Some(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// What the engine did with a referral's answer.
enum Done {
    Recorded,
    /// Understood, and nothing to record (an application accept, a pending RRI).
    Ignored,
    Refused(Refusal),
    /// The referral is still in the outbox: the answer came before the delivery's commit.
    NotDelivered,
}

/// One answer from `sender`, with `patience` for a full engine queue (the MLLP listener holds
/// a sender back a while; the API answers 503 at once).
pub(crate) async fn answer(
    msg: &[u8],
    sender: Sender,
    engine: &SyncSender<Command>,
    patience: Duration,
) -> Answer {
    let Some(msh) = parse_msh(msg).filter(|m| !m.control_id.is_empty()) else {
        let msh = parse_msh(msg).unwrap_or_default();
        return refuse(
            &msh,
            Refuse {
                code: Code::Reject,
                field: "MSH-10",
                hl7: 101,
                kind: "no_control_id",
                reason: "no MSH segment with a control id (MSH-10)",
                http: StatusCode::BAD_REQUEST,
            },
        );
    };
    let (client, destinations) = match sender {
        Ok(s) => s,
        Err(kind) => {
            return refuse(
                &msh,
                Refuse {
                    code: Code::Reject,
                    field: "",
                    hl7: 207,
                    kind,
                    reason: "answers to referrals come from a client with a provider: scope",
                    http: StatusCode::FORBIDDEN,
                },
            );
        }
    };
    let ae = |field: &str, hl7: u16, kind: &str, reason: &str, http: StatusCode| {
        refuse(
            &msh,
            Refuse {
                code: Code::Error,
                field,
                hl7,
                kind,
                reason,
                http,
            },
        )
    };
    let reply = match hl7_reply::read(msg) {
        Ok(r) => r,
        Err(r) => {
            let field = r.field.as_deref().unwrap_or("");
            // Neither RRI nor ACK (only over HTTPS: the listener routes by MSH-9): 200
            // unsupported message type; anything else the reader refuses: 102 data type error.
            let hl7 = if r.kind == "not_a_reply" { 200 } else { 102 };
            return ae(field, hl7, r.kind, &r.reason, StatusCode::BAD_REQUEST);
        }
    };
    let step = match hl7_answer::step(&reply) {
        Ok(s) => s,
        Err(r) => {
            return ae(
                r.field,
                r.hl7_code,
                r.kind,
                r.reason,
                StatusCode::BAD_REQUEST,
            );
        }
    };
    // The referral: MSA-2 (the control id of our REF^I12), else RF1-6 when it holds the
    // referral's whole id (our REF^I12's RF1-6 is the engagement, which names no one referral,
    // so it is matched exactly, never as a control id).
    let (acked, originating) = (
        reply.acknowledged.clone(),
        reply.originating_referral.clone(),
    );
    if acked.is_none() && originating.is_none() {
        return ae(
            "MSA-2",
            101,
            "no_referral_id",
            "MSA-2 names the REF^I12 answered (its MSH-10)",
            StatusCode::BAD_REQUEST,
        );
    }
    let status_field = match reply.kind {
        ReplyKind::Rri => "RF1-1",
        ReplyKind::Ack => "MSA-1",
    };
    let at = reply
        .sent_at
        .as_deref()
        .and_then(hl7_time)
        .unwrap_or_else(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    let work: super::engine::StoreWork = Box::new(move |store, k| {
        let r = (|| {
            let mut found = match &acked {
                Some(k) => store.referral_by_control_id(k)?,
                None => None,
            };
            if found.is_none()
                && let Some(k) = &originating
            {
                found = store.referral(k)?;
            }
            let Some(r) = found else {
                return Ok(Done::Refused(Refusal::NoSuchReferral));
            };
            if !destinations.contains(&r.destination) {
                return Ok(Done::Refused(Refusal::NotYours));
            }
            let (to, reason) = match step {
                Step::Nothing => return Ok(Done::Ignored),
                // Not delivered yet: no step, and no note either (a `queued` event would
                // outlast the delivery, since the latest event is the referral's status).
                _ if r.status == Status::Queued => return Ok(Done::NotDelivered),
                Step::Report(to, reason) => (to, reason),
                Step::Note(reason) => (r.status, Some(reason)),
            };
            let by = client.as_str();
            Ok(
                match store.report_referral(&k.audit, &r.id, &destinations, to, reason, &at, by)? {
                    Ok(_) => Done::Recorded,
                    Err(refusal) => Done::Refused(refusal),
                },
            )
        })();
        let _ = reply_tx.send(r);
    });
    let busy = |kind: &str, reason: &str| {
        refuse(
            &msh,
            Refuse {
                code: Code::Reject,
                field: "",
                hl7: 207,
                kind,
                reason,
                http: StatusCode::SERVICE_UNAVAILABLE,
            },
        )
    };
    let mut cmd = Command::Store(work);
    let mut waited = Duration::ZERO;
    loop {
        match engine.try_send(cmd) {
            Ok(()) => break,
            Err(TrySendError::Full(c)) if waited < patience => {
                cmd = c;
                tokio::time::sleep(Duration::from_millis(20)).await;
                waited += Duration::from_millis(20);
            }
            Err(_) => return busy("busy", "the gateway cannot take it now; resend"),
        }
    }
    let done: Result<Done, crate::store::StoreError> = match reply_rx.await {
        Ok(d) => d,
        Err(_) => return busy("stopping", "the gateway is stopping; resend"),
    };
    match done {
        Ok(d @ (Done::Recorded | Done::Ignored)) => Answer {
            ack: build_ack(&msh, Code::Accept, None),
            http: StatusCode::OK,
            outcome: if matches!(d, Done::Recorded) {
                "recorded"
            } else {
                "ignored"
            },
        },
        Ok(Done::NotDelivered) => refuse(
            &msh,
            Refuse {
                code: Code::Reject,
                field: "",
                hl7: 207,
                kind: "not_delivered_yet",
                reason: "the referral's delivery is not recorded yet; resend",
                http: StatusCode::CONFLICT,
            },
        ),
        Ok(Done::Refused(Refusal::NoSuchReferral)) => ae(
            "MSA-2",
            204,
            "unknown_referral",
            "no referral was sent with this control id",
            StatusCode::NOT_FOUND,
        ),
        Ok(Done::Refused(Refusal::NotYours)) => ae(
            "MSA-2",
            204,
            "not_yours",
            "this referral went to another destination",
            StatusCode::FORBIDDEN,
        ),
        Ok(Done::Refused(Refusal::Illegal(why))) => ae(
            status_field,
            207,
            "illegal_transition",
            &why,
            StatusCode::CONFLICT,
        ),
        Err(e) => {
            tracing::error!(error = %e, "a provider's HL7 answer was not stored");
            busy("store", "the gateway cannot store it now; resend")
        }
    }
}

/// An answer on the MLLP listener: refused (AR) unless the listener takes answers.
pub(crate) async fn over_mllp(
    msg: &[u8],
    cert_name: Option<&str>,
    takes_answers: bool,
    ctx: &super::sources::Context,
) -> String {
    let metrics = &ctx.health.metrics;
    if !takes_answers {
        let msh = parse_msh(msg).unwrap_or_default();
        let a = refuse(
            &msh,
            Refuse {
                code: Code::Reject,
                field: "MSH-9",
                hl7: 200,
                kind: "answers_not_taken_here",
                reason: "this listener takes no answers to referrals (referral_answers)",
                http: StatusCode::FORBIDDEN,
            },
        );
        metrics.answer("hl7_mllp", kind_label(msg), a.outcome);
        return a.ack;
    }
    let sender = sender_by_certificate(&ctx.gw.clients, cert_name);
    let a = answer(msg, sender, &ctx.engine, Duration::from_secs(10)).await;
    metrics.answer("hl7_mllp", kind_label(msg), a.outcome);
    a.ack
}

/// `POST /v1/referrals/hl7`: the message as the body (`x-application/hl7-v2+er7` or
/// `text/plain`), the ACK as the answer, in the same content type; the HTTP status says the
/// same as the ACK (200 AA; 400, 403, 404, 409 AE; 403, 409, 503 AR).
pub(super) async fn post_hl7(
    axum::extract::State(app): axum::extract::State<super::api::App>,
    axum::extract::Extension(caller): axum::extract::Extension<Caller>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let ct = super::api::media_type(&headers);
    if ct != ER7 && ct != "text/plain" {
        app.metrics
            .answer("hl7_http", kind_label(&body), "rejected");
        return super::auth::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body is an HL7 v2 message: Content-Type x-application/hl7-v2+er7 or text/plain",
        );
    }
    let a = answer(&body, sender_of(&caller), app.engine(), Duration::ZERO).await;
    app.metrics.answer("hl7_http", kind_label(&body), a.outcome);
    let mut r = (a.http, a.ack).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(ER7),
    );
    if a.http == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn err_names_the_place_and_code_and_times_keep_their_offset() {
        let e = err_segment("RF1-1", 103, "unknown_referral_status", "A, R, P or E");
        assert_eq!(
            e,
            "ERR||RF1^1^1|103^Table value not found^HL70357|E|unknown_referral_status^^L|||field RF1-1: unknown_referral_status: A, R, P or E\r"
        );
        assert_eq!(
            hl7_time("20261202101500-0500").as_deref(),
            Some("2026-12-02T10:15:00.000-05:00")
        );
        assert_eq!(
            hl7_time("202612021015+0100").as_deref(),
            Some("2026-12-02T10:15:00.000+01:00")
        );
        assert_eq!(hl7_time("20261202101500"), None, "no offset: not guessed");
        assert_eq!(hl7_time("2026-12-02"), None);
    }
}
