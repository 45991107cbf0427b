//! The Kafka consumer source (`source = { kind = "kafka" }`) of `pnp-gateway run`, against
//! librdkafka's mock cluster (in this test process; the gateway is a separate process) with
//! records produced by an independent client (tests/peers/kafka_producer.py: kafka-python, its
//! own implementation of the protocol): every record staged once, offsets committed only after
//! the store commit, a lost offset commit and kill -9 mid-stream losing and doubling nothing.

mod common;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOPIC: &str = "cad.incidents";
const GROUP: &str = "pnp-gateway";
const PARTITIONS: i32 = 3;

/// A gateway tree: an NDJSON adapter over the small mapping, a pipeline with the Kafka source.
fn gateway(dir: &Path, brokers: &str) -> PathBuf {
    write_adapter(dir, "cad-stream", "kind = \"ndjson\"", SMALL_MAPPING);
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"state/g.db\"\n[program]\ninclude = [\"overdose\"]\n\
             [[pipeline]]\nadapter = \"cad-stream\"\nfolder = \"drop\"\n\
             source = {{ kind = \"kafka\", brokers = \"{brokers}\", topic = \"{TOPIC}\", group_id = \"{GROUP}\", \
             properties = {{ \"session.timeout.ms\" = \"6000\", \"heartbeat.interval.ms\" = \"500\" }} }}\n"
        ),
    )
    .unwrap();
    success(&cli(&["check"], &cfg));
    cfg
}

/// `run --config` (the service), killed with SIGKILL when dropped.
struct Gateway(Child);

impl Gateway {
    fn start(cfg: &Path) -> Gateway {
        Gateway::start_logging(cfg, "gateway.log")
    }

    /// With its log (to read when a test fails) in `log` next to the config.
    fn start_logging(cfg: &Path, log: &str) -> Gateway {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cfg.parent().unwrap().join(log))
            .unwrap();
        Gateway(
            bin()
                .args(["run", "--config"])
                .arg(cfg)
                .env("RUST_LOG", "info,pnp_gateway=debug")
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    fn kill_9(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Clone)]
struct Produced {
    id: String,
    partition: i32,
    offset: i64,
    valid: bool,
}

/// The independent producer, in the background; what the broker acknowledged so far.
struct Producer {
    child: Child,
    acked: Arc<Mutex<Vec<Produced>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Producer {
    fn start(brokers: &str, first: usize, count: usize, delay_ms: u64) -> Producer {
        let python = std::env::var("PNP_PEERS_PYTHON")
            .expect("PNP_PEERS_PYTHON is not set: run the tests with scripts/test.sh");
        let mut child = std::process::Command::new(python)
            .arg(repo().join("tests/peers/kafka_producer.py"))
            .args([
                brokers,
                TOPIC,
                &first.to_string(),
                &count.to_string(),
                &delay_ms.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let out = BufReader::new(child.stdout.take().unwrap());
        let a = acked.clone();
        let reader = std::thread::spawn(move || {
            for line in out.lines() {
                let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
                a.lock().unwrap().push(Produced {
                    id: v["id"].as_str().unwrap().to_string(),
                    partition: v["partition"].as_i64().unwrap() as i32,
                    offset: v["offset"].as_i64().unwrap(),
                    valid: v["valid"].as_bool().unwrap(),
                });
            }
        });
        Producer {
            child,
            acked,
            reader: Some(reader),
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn finish(mut self) -> Vec<Produced> {
        assert!(self.child.wait().unwrap().success(), "the producer failed");
        self.reader.take().unwrap().join().unwrap();
        self.acked.lock().unwrap().clone()
    }
}

/// Each staged incident id with how many times it is staged.
fn staged(cfg: &Path) -> BTreeMap<String, usize> {
    let db = cfg.parent().unwrap().join("state/g.db");
    let mut out = BTreeMap::new();
    if !db.exists() {
        return out;
    }
    let Ok(c) = rusqlite::Connection::open(db) else {
        return out;
    };
    let Ok(mut q) = c.prepare("SELECT incident_id FROM incidents") else {
        return out;
    };
    let ids: Vec<String> = q
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for id in ids {
        *out.entry(id).or_default() += 1;
    }
    out
}

fn quarantined(cfg: &Path) -> i64 {
    let db = cfg.parent().unwrap().join("state/g.db");
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM quarantine", [], |r| r.get(0))
        .unwrap()
}

/// The group's committed offsets, per partition (absent: nothing committed).
struct Offsets(BaseConsumer);

impl Offsets {
    fn new(brokers: &str) -> Offsets {
        Offsets(
            ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .set("group.id", GROUP)
                .set("enable.auto.commit", "false")
                .create()
                .unwrap(),
        )
    }

    fn committed(&self) -> BTreeMap<i32, i64> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(TOPIC, p);
        }
        let got = self
            .0
            .committed_offsets(tpl, Duration::from_secs(5))
            .unwrap();
        got.elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    }

    fn high_watermarks(&self) -> BTreeMap<i32, i64> {
        (0..PARTITIONS)
            .map(|p| {
                let (_, high) = self
                    .0
                    .fetch_watermarks(TOPIC, p, Duration::from_secs(5))
                    .unwrap();
                (p, high)
            })
            .collect()
    }
}

/// The log without its colours.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How many of the producer's records FIRST..FIRST+COUNT are valid (see kafka_producer.py).
fn valid(first: usize, count: usize) -> usize {
    (first..first + count).filter(|i| i % 97 != 13).count()
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mock() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    mock
}

/// Every valid record staged exactly once, the others quarantined once.
fn assert_once(cfg: &Path, produced: &[Produced]) {
    let s = staged(cfg);
    let valid: BTreeSet<&str> = produced
        .iter()
        .filter(|p| p.valid)
        .map(|p| p.id.as_str())
        .collect();
    let doubled: Vec<_> = s.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "{} staged twice, e.g. {:?}",
        doubled.len(),
        doubled.iter().take(5).collect::<Vec<_>>()
    );
    let missing: Vec<_> = valid.iter().filter(|id| !s.contains_key(**id)).collect();
    assert!(
        missing.is_empty(),
        "{} lost, e.g. {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(s.len(), valid.len());
    let bad = produced.iter().filter(|p| !p.valid).count() as i64;
    assert_eq!(quarantined(cfg), bad, "each broken record quarantined once");
}

#[test]
fn every_record_staged_once_and_offsets_committed_only_after_the_store() {
    let mock = mock();
    let brokers = mock.bootstrap_servers();
    let d = tempfile::tempdir().unwrap();
    let cfg = gateway(d.path(), &brokers);
    let _gw = Gateway::start(&cfg);
    // A few records first, to see the gateway in the group; then a stream.
    let warm = Producer::start(&brokers, 0, 20, 0).finish();
    wait_for("the first records staged", 60, || {
        staged(&cfg).len() == valid(0, 20)
    });
    let producer = Producer::start(&brokers, 20, 380, 5);
    let offsets = Offsets::new(&brokers);
    // While records stream in: (committed offsets, then what the store holds).
    let mut samples = Vec::new();
    let mut commits_while_streaming = BTreeSet::new();
    let start = Instant::now();
    loop {
        let c = offsets.committed();
        let s = staged(&cfg);
        if producer.acked() < 380 {
            commits_while_streaming.insert(c.clone());
        }
        let done = producer.acked() == 380 && s.len() == valid(0, 400);
        samples.push((c, s));
        if done {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: every record staged"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    let produced: Vec<Produced> = warm.into_iter().chain(producer.finish()).collect();
    assert!(
        commits_while_streaming.len() > 3,
        "offsets were committed as records streamed in: {commits_while_streaming:?}"
    );
    // Every sample: each record below a committed offset was already in the store.
    let at: BTreeMap<(i32, i64), &Produced> = produced
        .iter()
        .map(|p| ((p.partition, p.offset), p))
        .collect();
    for (committed, staged) in &samples {
        for (&partition, &upto) in committed {
            for ((_, _), p) in at.range((partition, 0)..(partition, upto)) {
                assert!(
                    !p.valid || staged.contains_key(&p.id),
                    "offset {upto} of partition {partition} committed before {} was stored",
                    p.id
                );
            }
        }
    }
    // All of it committed in the end: the group's offsets reach each partition's end.
    wait_for("every offset committed", 20, || {
        offsets.committed() == offsets.high_watermarks()
    });
    assert_once(&cfg, &produced);
    let per_partition: BTreeSet<i32> = produced.iter().map(|p| p.partition).collect();
    assert_eq!(
        per_partition.len(),
        PARTITIONS as usize,
        "records on every partition"
    );
}

#[test]
fn a_lost_offset_commit_and_kill_9_mid_stream_lose_nothing_and_double_nothing() {
    let mock = mock();
    let brokers = mock.bootstrap_servers();
    let d = tempfile::tempdir().unwrap();
    let cfg = gateway(d.path(), &brokers);
    let offsets = Offsets::new(&brokers);

    // 1. The broker refuses every offset commit: the records are staged, nothing committed.
    mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE; 5000],
    );
    // Streamed while the gateway runs, so that they come in small batches; read again all at
    // once below, they would be cut in larger ones but for the ledger.
    let gw = Gateway::start(&cfg);
    let warm = Producer::start(&brokers, 0, 20, 0).finish();
    wait_for("the first records staged", 60, || {
        staged(&cfg).len() == valid(0, 20)
    });
    let stream = Producer::start(&brokers, 20, 280, 3).finish();
    let first: Vec<Produced> = warm.into_iter().chain(stream).collect();
    wait_for("the first records staged", 60, || {
        staged(&cfg).len() == valid(0, 300)
    });
    assert!(offsets.committed().is_empty(), "no offset was committed");
    gw.kill_9();
    mock.clear_request_errors(RDKafkaApiKey::OffsetCommit);

    // 2. Restarted, the group reads every partition from its start again: each batch is cut
    // where the push ledger says it was and answered from it, and only now committed.
    let gw = Gateway::start(&cfg);
    wait_for("the redelivered batches committed", 60, || {
        offsets.committed() == offsets.high_watermarks()
    });
    assert_once(&cfg, &first);
    let log = std::fs::read_to_string(d.path().join("gateway.log")).unwrap();
    assert!(
        plain(&log).contains("replayed=true"),
        "the redelivered batches were answered from the push ledger"
    );

    // 3. kill -9 while records stream in, several times; then everything, once.
    let producer = Producer::start(&brokers, 300, 600, 4);
    let mut gw = Some(gw);
    for n in [350, 500, 700] {
        wait_for("records staged before the kill", 60, || {
            staged(&cfg).len() >= n - 10
        });
        gw.take().unwrap().kill_9();
        gw = Some(Gateway::start(&cfg));
    }
    let second = producer.finish();
    let all: Vec<Produced> = first.iter().chain(&second).cloned().collect();
    let valid = all.iter().filter(|p| p.valid).count();
    wait_for("every record staged", 60, || staged(&cfg).len() >= valid);
    wait_for("every offset committed", 60, || {
        offsets.committed() == offsets.high_watermarks()
    });
    // A moment for anything that would come twice.
    std::thread::sleep(Duration::from_secs(1));
    assert_once(&cfg, &all);
    drop(gw);
}

#[test]
fn a_property_the_gateway_sets_itself_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let cfg = gateway(d.path(), "127.0.0.1:9");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "\"session.timeout.ms\" = \"6000\"",
        "\"enable.auto.commit\" = \"true\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let o = cli(&["check"], &cfg);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`enable.auto.commit` is set by the gateway"),
        "{err}"
    );
}

#[test]
fn two_gateways_in_one_group_on_one_store_split_the_partitions_and_stage_each_record_once() {
    let mock = mock();
    let brokers = mock.bootstrap_servers();
    let d = tempfile::tempdir().unwrap();
    let cfg = gateway(d.path(), &brokers);
    let offsets = Offsets::new(&brokers);
    let _a = Gateway::start_logging(&cfg, "a.log");
    let warm = Producer::start(&brokers, 0, 20, 0).finish();
    wait_for("the first records staged", 60, || {
        staged(&cfg).len() == valid(0, 20)
    });
    // The second joins the group: a rebalance while records stream in.
    let _b = Gateway::start_logging(&cfg, "b.log");
    let stream = Producer::start(&brokers, 20, 580, 5).finish();
    let all: Vec<Produced> = warm.into_iter().chain(stream).collect();
    wait_for("every record staged", 60, || {
        staged(&cfg).len() >= valid(0, 600)
    });
    wait_for("every offset committed", 60, || {
        offsets.committed() == offsets.high_watermarks()
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_once(&cfg, &all);
    // Both read a share of the partitions.
    for log in ["a.log", "b.log"] {
        let text = plain(&std::fs::read_to_string(d.path().join(log)).unwrap());
        let partitions: BTreeSet<&str> = text
            .lines()
            .filter(|l| l.contains("Kafka batch committed"))
            .filter_map(|l| l.split("partition=").nth(1))
            .filter_map(|r| r.split_whitespace().next())
            .collect();
        assert!(!partitions.is_empty(), "{log}: no batch committed");
        assert!(
            partitions.len() < PARTITIONS as usize || log == "a.log",
            "{log}: {partitions:?}"
        );
    }
}
