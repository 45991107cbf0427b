//! The `kafka` destination from `run`, against librdkafka's mock cluster (real Kafka protocol on
//! loopback ports, in this test process; the gateway is a separate process): keys, headers and
//! values as DHHR's consumer sees them, idempotent delivery through injected broker errors, a
//! cluster that is unreachable and then reachable, and a permanent error dead-lettered.

mod common;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, TopicPartitionList};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TOPIC: &str = "pnp.program";

/// The demo with DHHR's program data going to the mock cluster instead of a folder.
fn demo_to_kafka(dir: &std::path::Path, brokers: &str, timeout_ms: u64) -> PathBuf {
    let cfg = pnp_gateway::demo::write_tree(&dir.join("demo")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "deliver = { kind = \"file\", folder = \"deliveries/dhhr-program\" }",
        &format!(
            "deliver = {{ kind = \"kafka\", brokers = \"{brokers}\", topic = \"{TOPIC}\", timeout_ms = {timeout_ms} }}\nretry = {{ initial_backoff_ms = 10, max_backoff_ms = 20 }}"
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    success(&cli(&["check"], &cfg));
    success(&cli(&["keys", "init"], &cfg));
    cfg
}

struct Got {
    key: String,
    value: serde_json::Value,
    headers: Vec<(String, String)>,
    partition: i32,
}

/// Everything on the topic, read from the start of each partition.
fn consume(brokers: &str, partitions: i32, expect: usize) -> Vec<Got> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "dhhr-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(TOPIC, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Got {
                key: String::from_utf8_lossy(m.key().unwrap()).into_owned(),
                value: serde_json::from_slice(m.payload().unwrap()).unwrap(),
                headers,
                partition: m.partition(),
            });
        }
    }
    // Nothing more than expected.
    let extra = (0..10)
        .filter_map(|_| c.poll(Duration::from_millis(100)))
        .count();
    assert_eq!(extra, 0, "more messages than expected on the topic");
    out
}

#[test]
fn program_data_reaches_kafka_once_keyed_per_incident_with_headers() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic(TOPIC, 3, 3).unwrap();
    // Transient broker errors on the first produce requests: librdkafka's idempotent
    // producer retries them without duplicating.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ],
    );
    let brokers = mock.bootstrap_servers();
    let d = tempfile::tempdir().unwrap();
    let cfg = demo_to_kafka(d.path(), &brokers, 10_000);
    success(&cli(&["run", "--once"], &cfg));
    assert_eq!(
        outbox_count(&cfg, "dhhr-program", "delivered"),
        DEMO_ELIGIBLE as i64
    );
    // A second run sends nothing again.
    success(&cli(&["run", "--once"], &cfg));

    let got = consume(&brokers, 3, DEMO_ELIGIBLE);
    assert_eq!(got.len(), DEMO_ELIGIBLE, "every payload exactly once");
    let mut keys = std::collections::BTreeSet::new();
    for g in &got {
        assert_eq!(g.value["profile"], "safe-harbor");
        let id = g.value["incident"]["incident_id"].as_str().unwrap();
        assert!(id.starts_with("I-"), "a pseudonym, not the police number");
        let (agency, kid) = g.key.split_once('/').unwrap();
        assert!(
            ["generic-cad-csv", "sandiego-cfs"].contains(&agency),
            "{agency}"
        );
        assert_eq!(kid, id);
        assert!(keys.insert(g.key.clone()));
        let h = |k: &str| {
            g.headers
                .iter()
                .find(|(hk, _)| hk == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(h("pnp-schema-version").as_deref(), Some("1"));
        assert_eq!(h("content-type").as_deref(), Some("application/json"));
        assert_eq!(h("idempotency-key").unwrap().len(), 32);
        assert!((0..3).contains(&g.partition));
        let text = g.value.to_string();
        assert_deidentified(&text, "DHHR's topic");
    }
    // The idempotency keys on the topic are the outbox's.
    let db = rusqlite::Connection::open(cfg.parent().unwrap().join("state/gateway.db")).unwrap();
    let outbox: std::collections::BTreeSet<String> = db
        .prepare("SELECT idempotency_key FROM outbox WHERE destination = 'dhhr-program'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let sent: std::collections::BTreeSet<String> = got
        .iter()
        .map(|g| {
            g.headers
                .iter()
                .find(|(k, _)| k == "idempotency-key")
                .unwrap()
                .1
                .clone()
        })
        .collect();
    assert_eq!(outbox, sent);
}

#[test]
fn a_cluster_that_is_down_queues_then_drains_and_a_permanent_error_dead_letters() {
    // DHHR's cluster unreachable: its address has no listener (a port taken, then let go).
    // (Not the mock's broker_down/broker_up: re-creating a mock listener can fail on a busy
    // machine, and librdkafka aborts the process when it does.)
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable = gone.local_addr().unwrap().to_string();
    drop(gone);
    let d = tempfile::tempdir().unwrap();
    let cfg = demo_to_kafka(d.path(), &unreachable, 1_500);
    let out = cli(&["run", "--once"], &cfg);
    success(&out);
    let queued = "SELECT count(*) FROM outbox WHERE destination = 'dhhr-program' AND status = 'pending' AND attempts >= 1";
    assert_eq!(
        store_count(&cfg, queued),
        DEMO_ELIGIBLE as i64,
        "all queued for retry"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("destination is failing").count(),
        1,
        "one warning, not one per message: {err}"
    );
    // De-identified data: the warning speaks of payloads, not referrals.
    assert!(err.contains("payloads are queuing"), "{err}");
    // It is reachable again (here: at the mock cluster's address): the backlog drains.
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(TOPIC, 1, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&unreachable, &brokers);
    std::fs::write(&cfg, text).unwrap();
    let out = cli(&["run", "--once"], &cfg);
    success(&out);
    assert_eq!(
        outbox_count(&cfg, "dhhr-program", "delivered"),
        DEMO_ELIGIBLE as i64
    );
    assert_eq!(consume(&brokers, 1, DEMO_ELIGIBLE).len(), DEMO_ELIGIBLE);

    // A permanent refusal (the topic's ACL) is dead-lettered with its reason, not retried.
    let d2 = tempfile::tempdir().unwrap();
    let mock2 = MockCluster::new(1).unwrap();
    mock2.create_topic(TOPIC, 1, 1).unwrap();
    let cfg2 = demo_to_kafka(d2.path(), &mock2.bootstrap_servers(), 3_000);
    mock2
        .topic_error(
            TOPIC,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        )
        .unwrap();
    let out = cli(&["run", "--once"], &cfg2);
    success(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("dead-lettered").count(),
        1,
        "one warning for {DEMO_ELIGIBLE} dead letters: {err}"
    );
    assert!(err.contains("refuses payloads"), "{err}");
    let dead = success(&cli(&["outbox", "dead"], &cfg2));
    assert_eq!(
        outbox_count(&cfg2, "dhhr-program", "dead"),
        DEMO_ELIGIBLE as i64,
        "{dead}"
    );
    assert!(dead.to_lowercase().contains("authoriz"), "{dead}");
}

/// CPU seconds (user + system) a running process has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

#[test]
fn an_unreachable_cluster_costs_no_cpu_and_one_warning() {
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable = gone.local_addr().unwrap().to_string();
    drop(gone);
    let d = tempfile::tempdir().unwrap();
    let cfg = demo_to_kafka(d.path(), &unreachable, 1_000);
    // A first pass reads the demo's exports and queues their payloads; the second, measured,
    // only waits for the cluster (its message timeout: 3 s).
    success(&cli(&["run", "--once"], &cfg));
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("timeout_ms = 1000", "timeout_ms = 3000")).unwrap();
    let err_path = d.path().join("stderr.txt");
    let started = Instant::now();
    let mut child = bin()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .env("PNP_GATEWAY_TODAY", TODAY)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    // The last reading before the process ends (it is sampled every 20 ms).
    let mut cpu = 0.0;
    while child.try_wait().unwrap().is_none() {
        if let Some(c) = cpu_seconds(child.id()) {
            cpu = c;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = started.elapsed().as_secs_f64();
    eprintln!("{cpu:.2} s of CPU in {wall:.1} s");
    assert!(child.wait().unwrap().success());
    assert!(
        wall >= 3.0,
        "the pass waited for the message timeout: {wall:.1} s"
    );
    assert!(
        cpu < 0.3 * wall,
        "waiting for an unreachable cluster used {cpu:.2} s of CPU in {wall:.1} s"
    );
    let err = std::fs::read_to_string(&err_path).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !err.contains("ERROR"),
        "librdkafka's log is not the operator's: {err}"
    );
    assert_eq!(
        err.matches("destination is failing").count(),
        1,
        "one warning for the destination: {err}"
    );
    assert!(
        err.contains("AllBrokersDown"),
        "the warning says why: {err}"
    );
    assert!(lines.len() <= 3, "{} lines on stderr: {err}", lines.len());
}
