//! The `kafka` destination (DHHR's program data stream): an rdkafka producer with idempotence and
//! `acks=all`, one JSON message per payload. The key keeps one incident's updates on one
//! partition, in order: `{agency}/{incident id as the payload carries it}` (under Safe Harbor that
//! id is already a pseudonym; a payload without it is keyed by its idempotency key, so the key
//! never carries more than the payload). Headers: `pnp-schema-version`, `idempotency-key`,
//! `content-type`. librdkafka retries transient broker errors itself, within
//! `message.timeout.ms` (our `timeout_ms`); what is still failing then is classified here:
//! authorization and size errors are dead-lettered, the rest retried at the next backoff.
//!
//! A send waits for its delivery reports on a condition variable, woken by the producer's own
//! polling thread: a cluster that is down costs no CPU while its messages time out. librdkafka's
//! log and its cluster-wide errors (`AllBrokersDown`, every few hundred milliseconds while the
//! brokers are unreachable) go to debug; what the operator sees is the failing-destination rule's
//! one warning, whose reason names the last cluster error.

use super::SendError;
use crate::store::outbox::Row;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The version of the JSON value's shape, sent as the `pnp-schema-version` header.
pub const SCHEMA_VERSION: &str = "1";

/// How long a refused login or a failed TLS handshake stays the reason given for the brokers
/// being down.
const TELLING_FOR: Duration = Duration::from_secs(60);

/// Properties the gateway sets itself; a destination's `properties` may not override them.
pub const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "max.in.flight.requests.per.connection",
];

/// The delivery reports of the batch under way, by position in the batch.
#[derive(Default)]
struct Batch {
    /// Which batch is under way. A report that comes after its batch gave up (a later batch is
    /// under way) is ignored: that row was already marked for retry, and a retry carries the
    /// same idempotency key.
    generation: u64,
    outcomes: BTreeMap<usize, Result<(), SendError>>,
}

/// The producer's context: collects delivery reports (on the producer's polling thread) and
/// wakes the sender waiting for them.
#[derive(Default)]
struct Reports {
    batch: Mutex<Batch>,
    arrived: Condvar,
    /// The last cluster-wide error since the last delivered message (e.g. all brokers down), to
    /// say why messages timed out.
    /// With it, when it came if it says why (a refused login, a failed TLS handshake).
    cluster_error: Mutex<Option<(String, Option<Instant>)>>,
}

impl ClientContext for Reports {
    /// librdkafka's own log lines carry broker names and error codes, never message contents;
    /// they are for debugging, the operator's warning comes from the outcomes.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", ?level, facility = fac, "{log_message}");
    }

    /// Cluster-wide errors come again and again while brokers are unreachable: kept for the
    /// failing-destination warning's reason, logged at debug. "All brokers down" follows a
    /// refused SASL login or a failed TLS handshake: it does not replace one of those from the
    /// last [`TELLING_FOR`], so that the warning names it, with librdkafka's reason (the
    /// broker's address and what failed; never a credential). An older one is not the cause
    /// any more: librdkafka retries a broker within seconds and reports a refusal again.
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, reason, "cluster error");
        use RDKafkaErrorCode as C;
        let code = error.rdkafka_error_code();
        let telling = matches!(
            code,
            Some(C::Authentication | C::SaslAuthenticationFailed | C::SSL)
        );
        if let Ok(mut last) = self.cluster_error.lock() {
            let recent =
                |l: &(String, Option<Instant>)| l.1.is_some_and(|t| t.elapsed() < TELLING_FOR);
            if code == Some(C::AllBrokersDown) && last.as_ref().is_some_and(recent) {
                return;
            }
            *last = Some(if telling {
                (format!("{error}: {reason}"), Some(Instant::now()))
            } else {
                (error.to_string(), None)
            });
        }
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<(u64, usize)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Box<(u64, usize)>) {
        let (generation, index) = *opaque;
        let outcome = match result {
            Ok(_) => {
                if let Ok(mut last) = self.cluster_error.lock() {
                    *last = None;
                }
                Ok(())
            }
            Err((e, _)) => {
                let mut err = classify(e);
                if let Ok(last) = self.cluster_error.lock()
                    && let Some((why, _)) = last.as_ref()
                {
                    err.message = format!("{} (cluster: {why})", err.message);
                }
                Err(err)
            }
        };
        if let Ok(mut b) = self.batch.lock()
            && b.generation == generation
        {
            b.outcomes.insert(index, outcome);
            self.arrived.notify_all();
        }
    }
}

/// Retry or dead-letter, from the error librdkafka reports once its own retries are spent.
pub fn classify(e: &KafkaError) -> SendError {
    use RDKafkaErrorCode as C;
    let permanent = matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::InvalidRecord
                | C::InvalidMessage
                | C::InvalidTopic
                | C::UnsupportedVersion
        )
    );
    SendError {
        retryable: !permanent,
        message: format!("kafka: {e}"),
        retry_after: None,
        // A Kafka destination is told of no cancellation (a de-identified payload names no
        // referral), so whether a timed-out message was written changes nothing.
        may_have_arrived: false,
    }
}

pub struct KafkaSink {
    producer: ThreadedProducer<Reports>,
    topic: String,
    timeout: Duration,
}

impl KafkaSink {
    pub fn new(
        brokers: &str,
        topic: &str,
        timeout: Duration,
        properties: &BTreeMap<String, String>,
        sasl_password: &crate::config::sasl::SaslPassword,
    ) -> Result<KafkaSink, String> {
        let mut cfg = ClientConfig::new();
        for (k, v) in properties {
            cfg.set(k, v);
        }
        sasl_password.apply(&mut cfg)?;
        cfg.set("bootstrap.servers", brokers)
            .set("client.id", "pnp-gateway")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", timeout.as_millis().max(1).to_string());
        let producer = cfg
            .create_with_context(Reports::default())
            .map_err(|e| format!("cannot create the Kafka producer: {e}"))?;
        Ok(KafkaSink {
            producer,
            topic: topic.to_string(),
            timeout,
        })
    }

    /// The message key: agency and the incident id as the payload carries it.
    pub fn key(row: &Row, payload: &Value) -> String {
        match payload
            .pointer("/incident/incident_id")
            .and_then(Value::as_str)
        {
            Some(id) => format!("{}/{id}", row.adapter),
            None => format!("{}/{}", row.adapter, row.idempotency_key),
        }
    }

    /// Produces the batch and waits for every delivery report (at most the message timeout and
    /// a little more). One outcome per row, in order.
    pub fn send(&self, batch: &[(Row, Value)]) -> Vec<Result<(), SendError>> {
        let ctx = self.producer.context();
        let generation = match ctx.batch.lock() {
            Ok(mut b) => {
                b.generation += 1;
                b.outcomes.clear();
                b.generation
            }
            Err(_) => 0,
        };
        let mut queued = vec![false; batch.len()];
        let mut early: BTreeMap<usize, SendError> = BTreeMap::new();
        for (i, (row, payload)) in batch.iter().enumerate() {
            let key = Self::key(row, payload);
            let value = serde_json::to_vec(payload).unwrap_or_default();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "pnp-schema-version",
                    value: Some(SCHEMA_VERSION),
                })
                .insert(Header {
                    key: "idempotency-key",
                    value: Some(row.idempotency_key.as_str()),
                })
                .insert(Header {
                    key: "content-type",
                    value: Some("application/json"),
                });
            let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new((generation, i)))
                .key(&key)
                .payload(&value)
                .headers(headers);
            // A full local queue is back-pressure: the polling thread serves delivery reports;
            // try again shortly.
            let deadline = Instant::now() + self.timeout;
            loop {
                match self.producer.send(record) {
                    Ok(()) => {
                        queued[i] = true;
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                        if Instant::now() < deadline =>
                    {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => {
                        early.insert(i, classify(&e));
                        break;
                    }
                }
            }
        }
        let want = queued.iter().filter(|q| **q).count();
        // Every report comes within the message timeout; a little more for the last ones.
        let wait = self.timeout + Duration::from_secs(5);
        let mut reports = match ctx.batch.lock() {
            Ok(b) => ctx
                .arrived
                .wait_timeout_while(b, wait, |b| b.outcomes.len() < want)
                .map(|(mut b, _)| std::mem::take(&mut b.outcomes))
                .unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        };
        (0..batch.len())
            .map(|i| match early.remove(&i) {
                Some(e) => Err(e),
                None => reports.remove(&i).unwrap_or_else(|| {
                    Err(SendError {
                        retryable: true,
                        message: "kafka: no delivery report before the timeout".into(),
                        retry_after: None,
                        may_have_arrived: false,
                    })
                }),
            })
            .collect()
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}
