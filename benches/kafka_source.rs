//! Kafka source benchmark (not a test; `scripts/bench-kafka.sh` runs it): records/s that
//! `pnp-gateway run` consumes from a topic, stores and commits offsets for, beside a baseline in
//! the same run — the same records dropped as one NDJSON file and read by `run --once` — so that
//! the ratio says what the consumer path costs over the file path on the same machine and store.
//!
//! The broker is librdkafka's mock cluster in this process (3 partitions); the records are
//! produced before the gateway starts, so the figure is the backlog drain rate: from the
//! gateway's start to every record staged, and to every offset committed (the offsets move only
//! after the store commit, docs/sources.md). Settings (environment):
//! - `PNP_BENCH_RECORDS` records (default 20,000);
//! - `BENCH_WHERE` `shm disk` (default) or one of them: the store on tmpfs or on the disk.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOPIC: &str = "cad.incidents";
const GROUP: &str = "pnp-bench";
const PARTITIONS: i32 = 3;

/// The tests' small mapping (columns id, when, code, name, note).
const MAPPING: &str = include_str!("../tests/common/small_mapping.toml");

fn record(i: usize) -> String {
    let code = ["OD", "MH", "X"][i % 3];
    serde_json::json!({
        "id": format!("K-{i:07}"),
        "when": format!("2026-11-01 {:02}:{:02}:00", (i / 60) % 24, i % 60),
        "code": code,
        "name": format!("PERSON {i}"),
        "note": "called in by a neighbour",
    })
    .to_string()
}

/// A gateway tree in `dir`: the NDJSON adapter, no destination (the figure is the source's and
/// the store's), and with `brokers` a pipeline fed by the Kafka source.
fn tree(dir: &Path, brokers: Option<&str>) -> PathBuf {
    for d in ["adapters", "mappings", "drop"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("mappings/cad-stream.toml"), MAPPING).unwrap();
    std::fs::write(
        dir.join("adapters/cad-stream.toml"),
        "mapping = \"../mappings/cad-stream.toml\"\n[format]\nkind = \"ndjson\"\n[transport]\npattern = \"*.ndjson\"\n",
    )
    .unwrap();
    let source = brokers.map_or(String::new(), |b| {
        format!(
            "source = {{ kind = \"kafka\", brokers = \"{b}\", topic = \"{TOPIC}\", group_id = \"{GROUP}\" }}\n"
        )
    });
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"state/g.db\"\n[program]\ninclude = [\"overdose\"]\n\
             [[pipeline]]\nadapter = \"cad-stream\"\nfolder = \"drop\"\n{source}"
        ),
    )
    .unwrap();
    cfg
}

fn staged(cfg: &Path) -> i64 {
    rusqlite::Connection::open(cfg.parent().unwrap().join("state/g.db"))
        .and_then(|c| c.query_row("SELECT count(*) FROM incidents", [], |r| r.get(0)))
        .unwrap_or(0)
}

fn committed(consumer: &BaseConsumer) -> i64 {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .map(|t| {
            t.elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn rate(n: usize, s: f64) -> String {
    format!("{:>9.0} records/s", n as f64 / s)
}

fn measure(bin: &Path, base: &Path, n: usize) {
    let _ = std::fs::remove_dir_all(base);
    // The baseline: the same records as one file, `run --once`.
    let file_tree = base.join("file");
    let cfg = tree(&file_tree, None);
    let lines: Vec<String> = (0..n).map(record).collect();
    std::fs::write(file_tree.join("drop/all.ndjson"), lines.join("\n") + "\n").unwrap();
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let file_s = t.elapsed().as_secs_f64();
    assert!(out.success(), "run --once failed");
    assert_eq!(staged(&cfg), n as i64, "the baseline staged every record");

    // The Kafka source: the backlog produced first, then the gateway started.
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    for (i, line) in lines.iter().enumerate() {
        let key = format!("K-{i:07}");
        loop {
            match producer.send(BaseRecord::to(TOPIC).key(&key).payload(line)) {
                Ok(()) => break,
                Err((_, _)) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let offsets: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();

    let kafka_tree = base.join("kafka");
    let cfg = tree(&kafka_tree, Some(&brokers));
    let t = Instant::now();
    let mut gw = Command::new(bin)
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(kafka_tree.join("gateway.log")).unwrap())
        .spawn()
        .unwrap();
    let limit = Duration::from_secs(600);
    let mut first_s = None;
    loop {
        let k = staged(&cfg);
        if k > 0 && first_s.is_none() {
            first_s = Some(t.elapsed().as_secs_f64());
        }
        if k >= n as i64 {
            break;
        }
        assert!(t.elapsed() < limit, "the gateway did not stage the backlog");
        std::thread::sleep(Duration::from_millis(20));
    }
    let staged_s = t.elapsed().as_secs_f64();
    let first_s = first_s.unwrap_or(staged_s);
    while committed(&offsets) < n as i64 {
        assert!(t.elapsed() < limit, "the offsets were not committed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let committed_s = t.elapsed().as_secs_f64();
    let _ = Command::new("kill")
        .args(["-TERM", &gw.id().to_string()])
        .status();
    let _ = gw.wait();
    assert_eq!(staged(&cfg), n as i64, "each record staged once");

    println!(
        "  file, run --once          {file_s:>7.2} s {}",
        rate(n, file_s)
    );
    println!("  kafka, first record       {first_s:>7.2} s   (start, group join, first fetch)");
    let drain = staged_s - first_s;
    println!(
        "  kafka, staged             {staged_s:>7.2} s {}   from the first record: {drain:.2} s {} ({:.2}x the file's time)",
        rate(n, staged_s),
        rate(n, drain),
        drain / file_s
    );
    println!(
        "  kafka, offsets committed  {committed_s:>7.2} s {}",
        rate(n, committed_s)
    );
    let _ = std::fs::remove_dir_all(base);
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let n: usize = std::env::var("PNP_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let wheres = std::env::var("BENCH_WHERE").unwrap_or_else(|_| "shm disk".into());
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_pnp-gateway"));
    println!(
        "Kafka source: {n} NDJSON records in {PARTITIONS} partitions (librdkafka's mock cluster), backlog drained by `run`; baseline `run --once` of the same records as one file"
    );
    for w in wheres.split_whitespace() {
        let base = match w {
            "shm" => PathBuf::from(format!("/dev/shm/pnp-bench-kafka.{}", std::process::id())),
            _ => std::env::current_dir()
                .unwrap()
                .join(format!("target/bench/kafka.{}", std::process::id())),
        };
        println!("== {w}: {}", base.display());
        measure(&bin, &base, n);
    }
}
