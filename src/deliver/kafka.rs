//! The `kafka` destination (DHHR's program data stream): an rdkafka producer with idempotence and
//! `acks=all`, one JSON message per payload. The key keeps one incident's updates on one
//! partition, in order: `{agency}/{incident id as the payload carries it}` (under Safe Harbor that
//! id is already a pseudonym; a payload without it is keyed by its idempotency key, so the key
//! never carries more than the payload). Headers: `pnp-schema-version`, `idempotency-key`,
//! `content-type`. librdkafka retries transient broker errors itself, within
//! `message.timeout.ms` (our `timeout_ms`); what is still failing then is classified here:
//! authorization and size errors are dead-lettered, the rest retried at the next backoff.

use super::SendError;
use crate::store::outbox::Row;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The version of the JSON value's shape, sent as the `pnp-schema-version` header.
pub const SCHEMA_VERSION: &str = "1";

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

/// Collects the delivery reports of one batch, by position in the batch. A report that comes
/// after its batch gave up (a later batch is under way) is ignored: that row was already marked
/// for retry, and a retry carries the same idempotency key.
#[derive(Default)]
struct Reports {
    batch: AtomicU64,
    outcomes: Mutex<BTreeMap<usize, Result<(), SendError>>>,
}

impl ClientContext for Reports {
    // librdkafka's own log lines carry broker names and error codes, never message contents.
}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<(u64, usize)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Box<(u64, usize)>) {
        let (batch, index) = *opaque;
        if batch != self.batch.load(Ordering::SeqCst) {
            return;
        }
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(classify(e)),
        };
        if let Ok(mut m) = self.outcomes.lock() {
            m.insert(index, outcome);
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
    }
}

pub struct KafkaSink {
    producer: BaseProducer<Reports>,
    topic: String,
    timeout: Duration,
}

impl KafkaSink {
    pub fn new(
        brokers: &str,
        topic: &str,
        timeout: Duration,
        properties: &BTreeMap<String, String>,
    ) -> Result<KafkaSink, String> {
        let mut cfg = ClientConfig::new();
        for (k, v) in properties {
            cfg.set(k, v);
        }
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
        let generation = ctx.batch.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut m) = ctx.outcomes.lock() {
            m.clear();
        }
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
            // A full local queue is back-pressure: serve delivery reports and try again.
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
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        early.insert(i, classify(&e));
                        break;
                    }
                }
            }
        }
        let want = queued.iter().filter(|q| **q).count();
        let deadline = Instant::now() + self.timeout + Duration::from_secs(5);
        loop {
            let have = ctx.outcomes.lock().map(|m| m.len()).unwrap_or(0);
            if have >= want || Instant::now() >= deadline {
                break;
            }
            // rdkafka's poll serves events until its timeout is over: keep it short.
            self.producer.poll(Duration::from_millis(1));
        }
        let mut reports = ctx
            .outcomes
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        (0..batch.len())
            .map(|i| match early.remove(&i) {
                Some(e) => Err(e),
                None => reports.remove(&i).unwrap_or_else(|| {
                    Err(SendError {
                        retryable: true,
                        message: "kafka: no delivery report before the timeout".into(),
                        retry_after: None,
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
