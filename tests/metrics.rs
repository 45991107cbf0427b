//! `run --metrics-listen`: Prometheus counters while the gateway watches, counts only.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn metrics_count_reads_decisions_deliveries_and_the_outbox() {
    let d = tempfile::tempdir().unwrap();
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    success(&cli(&["keys", "init"], &cfg));
    let mut child = bin()
        .args(["run", "--metrics-listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = line
                .strip_prefix("metrics on http://")
                .and_then(|r| r.strip_suffix("/metrics"))
            {
                let _ = tx.send(a.to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let want = "pnp_deliveries_total{destination=\"dhhr-program\",outcome=\"delivered\"} 30\n";
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    while Instant::now() < deadline && !text.contains(want) {
        std::thread::sleep(Duration::from_millis(200));
        text = get(&addr, "/metrics");
    }
    let not_found = get(&addr, "/");
    let _ = child.kill();
    let _ = child.wait();
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(want), "{text}");
    assert!(
        text.contains("pnp_records_read_total 316\n") || text.contains("pnp_records_read_total "),
        "{text}"
    );
    assert!(text.contains(
        "pnp_disclosure_decisions_total{destination=\"prestera\",decision=\"withhold\"}"
    ));
    assert!(
        text.contains("pnp_outbox_rows{destination=\"dhhr-program\",status=\"delivered\"} 30\n")
    );
    assert!(text.contains("pnp_destination_failing{destination=\"dhhr-program\"} 0\n"));
    assert!(text.contains("pnp_records_rejected_total{kind="), "{text}");
    // Counts only: no value from a record.
    assert_deidentified(&text, "the metrics");
}
