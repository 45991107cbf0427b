//! The Kafka consumer source: a member of the consumer group `group_id` reading `topic`; each
//! message value is one record in the pipeline adapter's format, and a partition's offsets are
//! committed only after the engine answered that the records are committed to the store.
//!
//! **Why a `BaseConsumer` on a thread of its own**, not a `StreamConsumer` on the runtime: every
//! step after a poll is blocking by nature (waiting for the engine's answer, then a synchronous
//! offset commit), and they must happen in order, partition batch after partition batch. A plain
//! thread says so directly and keeps librdkafka off the API's async workers, as the Kafka
//! destination's `ThreadedProducer` does.
//!
//! **Batches.** Messages polled from ONE partition are gathered for up to [`LINGER`] or
//! [`MAX_BATCH`] messages and handed to the engine as one push whose body is the values, one per
//! line (the `ndjson` format; line breaks inside a value, whitespace in valid JSON, become
//! spaces). Other formats (`json`, `nena_eido`, `hl7v2`, `nibrs_xml`, delimited text with
//! `header = false`) take one message per push, since their documents cannot be joined. The push
//! key is `topic/partition/first-last` (offsets) under the client `kafka`.
//!
//! **Acknowledgement.** Only after the engine's answer (sent after its commit) is the offset after
//! the batch stored and committed, synchronously. A batch whose records were rejected is
//! committed too: the rejected records are quarantined with their reasons, as for a file.
//! When the store cannot take a batch, it is offered again after a pause, under the same key.
//!
//! **Nothing twice.** After a crash or a rebalance, a partition is read again from its last
//! committed offset, and a batch that was committed to the store but not yet to Kafka comes
//! again. Before a batch is cut, the push ledger is asked whether a push started at its first
//! offset: if so, the batch is cut at that push's last offset, the push is answered from the
//! ledger (nothing read again) and the offset committed. So, with one store, each record is
//! staged once. Only if those messages are gone (retention) by then is a batch cut anew after
//! [`CUT_WAIT`]; then its records may be staged twice, and the outbox still queues each
//! incident once per destination and payload (docs/delivery.md).
//!
//! **Rebalance.** A revoked partition's gathered messages are dropped (they were acknowledged
//! to no one; the partition's next owner reads them from the committed offset), and librdkafka
//! refuses to store an offset for a partition no longer assigned.

use super::Context;
use crate::config::adapter::Format;
use crate::config::source::SourceSpec;
use crate::service::ServiceError;
use crate::service::engine::Command;
use crate::service::push::{PushAnswer, PushError};
use crate::store::Store;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a partition's first gathered message waits for others before its batch is pushed.
pub const LINGER: Duration = Duration::from_millis(50);
/// The most messages in one batch.
pub const MAX_BATCH: usize = 500;
/// How long a batch that the ledger says was pushed before waits for its last message.
pub const CUT_WAIT: Duration = Duration::from_secs(10);
/// The push ledger's client name for every Kafka source.
pub const CLIENT: &str = "kafka";

/// Properties the source sets itself; `properties` may not override them.
pub const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
];

/// The consumer's context: partitions revoked since the loop last looked, the lag from
/// librdkafka's statistics, and the last client-wide error's kind.
#[derive(Default)]
struct Watch {
    revoked: Mutex<BTreeSet<i32>>,
    lag: Mutex<Option<i64>>,
    error: Mutex<Option<String>>,
}

impl ClientContext for Watch {
    /// librdkafka's log carries broker names and error codes, never message contents.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", ?level, facility = fac, "{log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, reason, "cluster error");
        if let Ok(mut e) = self.error.lock() {
            *e = Some(error_kind(&error));
        }
    }

    /// The lag costs nothing here: librdkafka computes it per partition for its statistics.
    fn stats(&self, s: Statistics) {
        let lag = s
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        if let Ok(mut l) = self.lag.lock() {
            *l = Some(lag);
        }
    }
}

impl ConsumerContext for Watch {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance
            && let Ok(mut r) = self.revoked.lock()
        {
            r.extend(tpl.elements().iter().map(|e| e.partition()));
        }
    }
}

/// An error's kind for `/readyz` (librdkafka's code name: never a value).
fn error_kind(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => "kafka".into(),
    }
}

/// Joins the group and consumes on a thread of its own.
pub(super) fn start(ctx: Context, spec: &SourceSpec) -> Result<(), ServiceError> {
    let SourceSpec::Kafka {
        brokers,
        topic,
        group_id,
        properties,
        sasl_password_file,
        sasl_password_env,
    } = spec
    else {
        unreachable!("a Kafka spec");
    };
    let p = &ctx.gw.pipelines[ctx.pipeline];
    let per_line = matches!(p.adapter.format, Format::Ndjson { .. });
    let mut cfg = ClientConfig::new();
    // A new group reads the topic from its start: records produced before the gateway first
    // joined are records too. `properties` may say otherwise.
    cfg.set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000");
    for (k, v) in properties {
        cfg.set(k, v);
    }
    // The spec's paths are resolved against the config's folder (`SourceSpec::resolve`).
    crate::config::sasl::SaslPassword::new(
        sasl_password_file.as_ref().map(Into::into),
        sasl_password_env.clone(),
    )
    .apply(&mut cfg)
    .map_err(|e| ServiceError::Source(format!("pipeline `{}`: Kafka: {e}", p.id)))?;
    cfg.set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("client.id", "pnp-gateway")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let consumer: BaseConsumer<Watch> = cfg
        .create_with_context(Watch::default())
        .map_err(|e| ServiceError::Source(format!("pipeline `{}`: Kafka: {e}", p.id)))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| ServiceError::Source(format!("pipeline `{}`: Kafka: {e}", p.id)))?;
    // The ledger is read (never written) on a connection of this thread's own.
    let ledger = Store::open(&ctx.gw.store_path)?;
    ctx.health.source(&p.id, |s| {
        s.kind = "kafka";
        s.state = "consuming";
    });
    tracing::info!(pipeline = %p.id, topic = %topic, group = %group_id, "Kafka consumer");
    let source = Source {
        ctx: ctx.clone(),
        pipeline: p.id.clone(),
        topic: topic.clone(),
        per_line,
        consumer,
        ledger,
        gathered: BTreeMap::new(),
    };
    std::thread::Builder::new()
        .name("pnp-kafka".into())
        .spawn(move || source.run())
        .map_err(|source| ServiceError::Io {
            what: "starting the Kafka consumer".into(),
            source,
        })?;
    Ok(())
}

/// One partition's messages gathered for its next push.
struct Gathered {
    since: Instant,
    /// Where the ledger says a push from the first offset ended, if one did.
    cut_at: Option<i64>,
    offsets: Vec<i64>,
    values: Vec<Vec<u8>>,
}

struct Source {
    ctx: Context,
    pipeline: String,
    topic: String,
    per_line: bool,
    consumer: BaseConsumer<Watch>,
    ledger: Store,
    gathered: BTreeMap<i32, Gathered>,
}

impl Source {
    fn run(mut self) {
        while !self.ctx.stop.is_set() {
            match self.consumer.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => {
                    let value = m.payload().unwrap_or_default().to_vec();
                    self.gather(m.partition(), m.offset(), value);
                }
                Some(Err(e)) => {
                    tracing::debug!(pipeline = %self.pipeline, error = %e, "Kafka poll error");
                    let kind = error_kind(&e);
                    self.ctx.health.source(&self.pipeline, |s| s.failed(kind));
                }
                None => {}
            }
            self.drop_revoked();
            self.push_ready();
            let lag = self.consumer.context().lag.lock().ok().and_then(|l| *l);
            let error = self
                .consumer
                .context()
                .error
                .lock()
                .ok()
                .and_then(|mut e| e.take());
            self.ctx.health.source(&self.pipeline, |s| {
                s.lag = lag;
                if let Some(kind) = error {
                    s.failed(kind);
                }
            });
        }
        // What is gathered was acknowledged to no one: the next start reads it again.
        self.ctx
            .health
            .source(&self.pipeline, |s| s.state = "stopped");
        tracing::info!(pipeline = %self.pipeline, "Kafka consumer stopped");
    }

    fn gather(&mut self, partition: i32, offset: i64, value: Vec<u8>) {
        if !self.gathered.contains_key(&partition) {
            let prefix = format!("{}/{partition}/{offset}-", self.topic);
            let cut_at = match self
                .ledger
                .push_key_with_prefix(CLIENT, &self.pipeline, &prefix)
            {
                Ok(k) => k.and_then(|k| k[prefix.len()..].parse().ok()),
                Err(e) => {
                    tracing::warn!(pipeline = %self.pipeline, error = %e, "cannot read the push ledger");
                    None
                }
            };
            self.gathered.insert(
                partition,
                Gathered {
                    since: Instant::now(),
                    cut_at,
                    offsets: Vec::new(),
                    values: Vec::new(),
                },
            );
        }
        let g = self.gathered.get_mut(&partition).expect("just inserted");
        g.offsets.push(offset);
        g.values.push(value);
    }

    fn drop_revoked(&mut self) {
        let revoked = std::mem::take(&mut *self.consumer.context().revoked.lock().expect("lock"));
        for p in revoked {
            if self.gathered.remove(&p).is_some() {
                tracing::info!(pipeline = %self.pipeline, partition = p, "partition revoked: its unacknowledged messages are left to its next owner");
            }
        }
    }

    /// Pushes every partition's batch that is due, one after the other.
    fn push_ready(&mut self) {
        let due: Vec<i32> = self
            .gathered
            .iter()
            .filter(|(_, g)| match g.cut_at {
                Some(end) => {
                    g.offsets.last().is_some_and(|&o| o >= end) || g.since.elapsed() >= CUT_WAIT
                }
                None => {
                    !self.per_line || g.offsets.len() >= MAX_BATCH || g.since.elapsed() >= LINGER
                }
            })
            .map(|(p, _)| *p)
            .collect();
        for partition in due {
            if self.ctx.stop.is_set() {
                return;
            }
            let Some(mut g) = self.gathered.remove(&partition) else {
                continue;
            };
            let take = match g.cut_at {
                Some(end) => g.offsets.iter().take_while(|&&o| o <= end).count(),
                None if self.per_line => g.offsets.len().min(MAX_BATCH),
                None => 1,
            }
            .max(1);
            // What is beyond this batch starts the next one (and what is polled while this
            // one waits goes after it).
            let rest_offsets = g.offsets.split_off(take);
            let rest_values = g.values.split_off(take);
            for (o, v) in rest_offsets.into_iter().zip(rest_values) {
                self.gather(partition, o, v);
            }
            if !self.push(partition, &g.offsets, &g.values) {
                // Not acknowledged (stopping, or the partition was revoked): what is gathered
                // of it goes too; it is read again from the committed offset.
                self.gathered.remove(&partition);
            }
        }
    }

    /// One batch to the engine, again after a pause until it is committed; then its offset is
    /// committed. False when it was not acknowledged (stopping, or the partition is gone).
    fn push(&mut self, partition: i32, offsets: &[i64], values: &[Vec<u8>]) -> bool {
        let (first, last) = (offsets[0], offsets[offsets.len() - 1]);
        let key = format!("{}/{partition}/{first}-{last}", self.topic);
        let body = self.body(values);
        let mut pause = Duration::from_millis(100);
        loop {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let cmd = Command::Push {
                pipeline: self.ctx.pipeline,
                client: CLIENT.into(),
                key: key.clone(),
                body: body.clone(),
                cursor: None,
                reply,
            };
            // A full queue blocks here: the engine's pace is the consumer's.
            if self.ctx.engine.send(cmd).is_err() {
                return false;
            }
            match answer.blocking_recv() {
                Ok(Ok(a)) => {
                    self.answered(partition, offsets, &a);
                    return self.commit(partition, last);
                }
                Ok(Err(e)) => {
                    let kind = match e {
                        PushError::KeyReused => "key_reused",
                        _ => "store_unavailable",
                    };
                    tracing::warn!(pipeline = %self.pipeline, partition, first, last, error = %e, "the batch is not committed; offering it again");
                    self.ctx.health.source(&self.pipeline, |s| {
                        s.state = "backing_off";
                        s.failed(kind.into());
                    });
                }
                // The engine stopped before answering.
                Err(_) => return false,
            }
            let until = Instant::now() + pause;
            while Instant::now() < until {
                if self.ctx.stop.is_set() {
                    return false;
                }
                // Serving the group (heartbeats, rebalances) while waiting.
                if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(20)) {
                    let value = m.payload().unwrap_or_default().to_vec();
                    self.gather(m.partition(), m.offset(), value);
                }
            }
            if self
                .consumer
                .context()
                .revoked
                .lock()
                .is_ok_and(|r| r.contains(&partition))
            {
                return false;
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    fn body(&self, values: &[Vec<u8>]) -> axum::body::Bytes {
        if !self.per_line {
            return values[0].clone().into();
        }
        let mut body = Vec::with_capacity(values.iter().map(|v| v.len() + 1).sum());
        for v in values {
            // Inside valid JSON a line break can only be whitespace between tokens.
            body.extend(
                v.iter()
                    .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
            );
            body.push(b'\n');
        }
        body.into()
    }

    /// Logs the answer; each rejected record by its message's offset (line n of a batch is its
    /// n-th message; the quarantine names the spool file, which is gone once answered).
    fn answered(&self, partition: i32, offsets: &[i64], a: &PushAnswer) {
        let (first, last) = (offsets[0], offsets[offsets.len() - 1]);
        if !a.rejected.is_empty() {
            let at: Vec<i64> = a
                .rejected
                .iter()
                .take(20)
                .filter_map(|r| {
                    let n = if self.per_line { r.line } else { 1 };
                    offsets
                        .get(usize::try_from(n).ok()?.checked_sub(1)?)
                        .copied()
                })
                .collect();
            tracing::warn!(pipeline = %self.pipeline, partition, first, last, rejected = a.rejected_count(), offsets = ?at, "records of a Kafka batch quarantined");
        }
        tracing::debug!(pipeline = %self.pipeline, partition, first, last, accepted = a.accepted, replayed = a.replayed, "Kafka batch committed");
    }

    /// Stores and commits the offset after `last`, synchronously.
    fn commit(&mut self, partition: i32, last: i64) -> bool {
        // `store_offsets` takes the next offset to read, as committed; `store_offset` (librdkafka's
        // legacy `rd_kafka_offset_store`) adds one itself, an easy way to skip a message.
        let mut tpl = TopicPartitionList::new();
        let done = tpl
            .add_partition_offset(&self.topic, partition, Offset::Offset(last + 1))
            .and_then(|()| self.consumer.store_offsets(&tpl))
            .and_then(|()| self.consumer.commit_consumer_state(CommitMode::Sync));
        match done {
            Ok(()) => {
                self.ctx.health.source(&self.pipeline, |s| {
                    s.state = "consuming";
                    s.last_error = None;
                });
                true
            }
            Err(e) => {
                // The records are in the store; the batch comes again and is answered from the
                // ledger.
                tracing::warn!(pipeline = %self.pipeline, partition, error = %e, "cannot commit the offset; the batch will be read again and answered from the ledger");
                let kind = error_kind(&e);
                self.ctx.health.source(&self.pipeline, |s| s.failed(kind));
                // The next batch of this partition commits past this one.
                true
            }
        }
    }
}
