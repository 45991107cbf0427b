//! The HTTP poll source (`source = { kind = "http_poll" }`) against an independent peer,
//! tests/peers/poll_server.py (Python's http.server, serving pages of JSON by cursor): every
//! record is staged once across a clean restart and a kill -9 mid-stream, the cursor in the
//! store is the last record's, a failing peer is backed off from with one warning and recovered
//! from with one line, an unchanged page is asked with If-None-Match and answered 304, and the
//! auth header from its file is sent. The Python peers are set up by scripts/test.sh
//! (PNP_PEERS_PYTHON).

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Peer {
    _p: Proc,
    port: u16,
    data: PathBuf,
    mode: PathBuf,
    log: PathBuf,
}

impl Peer {
    fn start(dir: &Path, token: &str) -> Peer {
        let python = std::env::var("PNP_PEERS_PYTHON")
            .expect("PNP_PEERS_PYTHON is not set: run the tests with scripts/test.sh");
        let (data, mode, log) = (
            dir.join("data.json"),
            dir.join("mode"),
            dir.join("peer.log"),
        );
        std::fs::write(&data, "[]").unwrap();
        std::fs::write(&mode, "200").unwrap();
        let mut child = std::process::Command::new(python)
            .arg(repo().join("tests/peers/poll_server.py"))
            .args([&data, &mode, &log])
            .arg(token)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
        Peer {
            _p: Proc(child),
            port,
            data,
            mode,
            log,
        }
    }

    /// Records `from..to`, one a second from 2026-11-01 08:00:00 (the cursor field `when`).
    fn set_records(&self, to: usize) {
        let base = chrono::NaiveDate::from_ymd_opt(2026, 11, 1)
            .unwrap()
            .and_hms_opt(8, 0, 0)
            .unwrap();
        let records: Vec<serde_json::Value> = (0..to)
            .map(|i| {
                serde_json::json!({
                    "id": format!("P-{i:05}"),
                    "when": when(&base, i),
                    "code": "OD",
                    "name": format!("Person {i}"),
                    "note": "polled",
                })
            })
            .collect();
        let tmp = self.data.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&records).unwrap()).unwrap();
        std::fs::rename(tmp, &self.data).unwrap();
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn when(base: &chrono::NaiveDateTime, i: usize) -> String {
    (*base + chrono::Duration::seconds(i as i64))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn last_when(n: usize) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(2026, 11, 1)
        .unwrap()
        .and_hms_opt(8, 0, 0)
        .unwrap();
    when(&base, n - 1)
}

fn gateway(cfg: &Path, log: &Path) -> Proc {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Proc(
        bin()
            .args(["run", "--config"])
            .arg(cfg)
            .env("PNP_GATEWAY_TODAY", TODAY)
            .env("RUST_LOG", "info")
            .stderr(err)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Staged incidents; 0 while the store is still being created.
fn staged(cfg: &Path) -> i64 {
    if !cfg.parent().unwrap().join("state/gateway.db").exists() {
        return 0;
    }
    rusqlite::Connection::open(cfg.parent().unwrap().join("state/gateway.db"))
        .and_then(|c| c.query_row("SELECT count(*) FROM incidents", [], |r| r.get(0)))
        .unwrap_or(0)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The stored cursor (it moves with a page's answer, just after the page's records commit).
fn cursor(cfg: &Path) -> String {
    rusqlite::Connection::open(cfg.parent().unwrap().join("state/gateway.db"))
        .and_then(|c| {
            c.query_row(
                "SELECT cursor FROM source_cursors WHERE pipeline = 'polled'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or_default()
}

/// Waits until `n` records are staged and the cursor is the last one's.
fn wait_read(cfg: &Path, n: usize, limit: Duration) {
    wait_for(&format!("{n} staged"), limit, || {
        staged(cfg) == n as i64 && cursor(cfg) == last_when(n)
    });
}

fn setup(dir: &Path, peer: &Peer) -> PathBuf {
    write_adapter(
        dir,
        "polled",
        "kind = \"json\"\n[transport]\npattern = \"*.json\"",
        SMALL_MAPPING,
    );
    std::fs::write(dir.join("token"), "X-App-Token: s3cret-token\n").unwrap();
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[store]
path = "state/gateway.db"
[[pipeline]]
adapter = "polled"
folder = "drop"
source = {{ kind = "http_poll", url = "http://127.0.0.1:{}/records?since={{cursor}}&limit=50", cursor_field = "when", cursor_start = "2000-01-01 00:00:00", page_size = 50, every_secs = 2, auth_header_file = "token", timeout_ms = 5000 }}
"#,
            peer.port
        ),
    )
    .unwrap();
    cfg
}

fn kill_term(p: &mut Proc) {
    let st = std::process::Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t = Instant::now();
    loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            assert!(s.success(), "the gateway exits 0 on SIGTERM: {s}");
            assert!(t.elapsed() < Duration::from_secs(10), "stopped in time");
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(12),
            "the gateway did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn distinct(cfg: &Path) -> i64 {
    store_count(cfg, "SELECT count(DISTINCT incident_id) FROM incidents")
}

#[test]
fn every_record_once_across_restart_and_kill_9() {
    let d = tempfile::tempdir().unwrap();
    let peer = Peer::start(d.path(), "s3cret-token");
    let cfg = setup(d.path(), &peer);
    let log = d.path().join("gateway.log");
    peer.set_records(237);

    let mut g = gateway(&cfg, &log);
    wait_read(&cfg, 237, Duration::from_secs(60));
    // Pages 0..4 full (50), the fifth short (37): on to the next at once, then a wait.
    let reqs = peer.requests();
    assert!(
        reqs.iter().all(|r| r["token"] == true),
        "the auth header went with every request"
    );
    assert_eq!(
        reqs[0]["since"], "2000-01-01 00:00:00",
        "the cursor is URL-decoded back"
    );
    // The page after the last record is empty and unchanged: asked again with its ETag, 304.
    wait_for("a 304", Duration::from_secs(10), || {
        peer.requests()
            .iter()
            .any(|r| r["status"] == 304 && r["if_none_match"].is_string())
    });
    kill_term(&mut g);
    assert_eq!(staged(&cfg), 237);

    // A restart reads on from the stored cursor: only the new records.
    peer.set_records(300);
    let mut g = gateway(&cfg, &log);
    wait_read(&cfg, 300, Duration::from_secs(60));
    assert_eq!(
        peer.requests()
            .iter()
            .filter(|r| r["since"] == "2000-01-01 00:00:00")
            .count(),
        1,
        "the restart asked from the stored cursor"
    );

    // kill -9 while pages are being read, three times, each time restarted: nothing lost,
    // nothing twice.
    peer.set_records(2300);
    for _ in 0..3 {
        let from = staged(&cfg);
        wait_for("reading under way", Duration::from_secs(60), || {
            staged(&cfg) > from + 150
        });
        g.0.kill().unwrap();
        g.0.wait().unwrap();
        let at_kill = staged(&cfg);
        assert!(at_kill < 2300, "the kill came mid-stream ({at_kill})");
        g = gateway(&cfg, &log);
    }
    wait_read(&cfg, 2300, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(staged(&cfg), 2300, "nothing read twice");
    assert_eq!(distinct(&cfg), 2300);
    assert_eq!(cursor(&cfg), last_when(2300));

    // The peer fails for a while: backing off (not a request per page), one warning, then
    // recovery with one line.
    peer.set_records(2310);
    std::fs::write(&peer.mode, "500").unwrap();
    let before = peer.requests().len();
    std::thread::sleep(Duration::from_secs(6));
    let failed: Vec<_> = peer.requests()[before..]
        .iter()
        .filter(|r| r["status"] == 500)
        .cloned()
        .collect();
    assert!(
        failed.len() >= 2,
        "asked again while failing: {}",
        failed.len()
    );
    // Backoff 0.5, 1, 2, 2, 2 s: a handful of requests in 6 s, not hundreds.
    assert!(
        failed.len() <= 8,
        "backed off: {} requests in 6 s",
        failed.len()
    );
    assert_eq!(staged(&cfg), 2300);
    std::fs::write(&peer.mode, "200").unwrap();
    wait_read(&cfg, 2310, Duration::from_secs(20));
    kill_term(&mut g);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("polling fails").count(), 1, "{text}");
    assert_eq!(text.matches("polling recovered").count(), 1, "{text}");
    assert!(!text.contains("s3cret"), "the auth header is never logged");
    assert!(!text.contains("Person "), "no record value is logged");
    assert_eq!(distinct(&cfg), 2310);
}

/// The crash this source's key is chosen for: a page's push begun and half read (its first
/// records committed by the ingest) when the gateway died, before the answer that moves the
/// cursor. Meanwhile the page at that cursor changed (records were added). The next start must
/// finish the begun page from its spool file and go on from its last record: keyed by the page's
/// bytes, the changed page would be read as a new push and the records read before the crash
/// staged twice. The crash is made with the library, as the engine leaves it: the ledger row
/// begun, the spool file written, the ingest stopped after 5 of its 10 records.
#[test]
fn a_page_begun_before_a_crash_is_finished_even_when_the_page_changed() {
    use sha2::{Digest, Sha256};
    let d = tempfile::tempdir().unwrap();
    let peer = Peer::start(d.path(), "s3cret-token");
    let cfg = setup(d.path(), &peer);
    let log = d.path().join("gateway.log");
    peer.set_records(100);
    let mut g = gateway(&cfg, &log);
    wait_read(&cfg, 100, Duration::from_secs(60));
    kill_term(&mut g);

    // The page the peer served at the cursor: records 100..110, half read, no answer.
    peer.set_records(110);
    let at = cursor(&cfg);
    let page = reqwest::blocking::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/records?since={}&limit=50",
            peer.port,
            pnp_gateway::service::sources::render_url("{cursor}", &at)
        ))
        .header("X-App-Token", "s3cret-token")
        .send()
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&page)
            .unwrap()
            .len(),
        10
    );
    let gw = pnp_gateway::config::Gateway::load(&cfg).unwrap();
    let p = &gw.pipelines[0];
    let mut store = pnp_gateway::store::Store::open(&gw.store_path).unwrap();
    let hex = |b: &[u8]| pnp_gateway::hex::encode(&Sha256::digest(b));
    let key = format!("cursor-{}", hex(at.as_bytes()));
    let spool = gw
        .store_path
        .parent()
        .unwrap()
        .join("spool")
        .join(&p.id)
        .join(hex(format!("poll\n{key}").as_bytes()));
    std::fs::create_dir_all(spool.parent().unwrap()).unwrap();
    std::fs::write(&spool, &page).unwrap();
    store
        .push_begin(
            "poll",
            &p.id,
            &key,
            &hex(&page),
            &spool.display().to_string(),
        )
        .unwrap();
    pnp_gateway::ingest::ingest_file(
        &mut store,
        &p.adapter,
        &gw.program,
        &spool,
        Some(5),
        None,
        &mut pnp_gateway::pipeline::Stats::default(),
    )
    .unwrap();
    drop(store);
    assert_eq!(staged(&cfg), 105);
    assert_eq!(cursor(&cfg), at, "the cursor did not move");

    // The page at the cursor grows before the restart: its bytes differ from the begun push's.
    peer.set_records(130);
    let mut g = gateway(&cfg, &log);
    wait_read(&cfg, 130, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    kill_term(&mut g);
    assert_eq!(staged(&cfg), 130, "nothing read twice");
    assert_eq!(distinct(&cfg), 130);
    assert!(!spool.exists(), "the finished page's spool file is gone");
}
