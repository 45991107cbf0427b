//! Listeners that strangers cannot wear down (src/server/), against the `pnp-gateway
//! receive` binary on loopback: slow heads and idle connections are closed in time, connections
//! over the cap wait, bodies are refused before they are read, and `receive` keeps its TLS
//! identity across restarts.

mod common;

use common::*;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "a-shared-secret-for-the-listener-tests-0123456789";

/// A `receive` process, killed when dropped.
struct Receiver {
    child: Child,
    addr: SocketAddr,
    ca: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn receive(dir: &Path, args: &[&str]) -> Receiver {
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let tls = dir.join("tls");
    let mut child = bin()
        .args(["receive", "--listen", "127.0.0.1:0", "--secret-file"])
        .arg(&secret)
        .arg("--tls-dir")
        .arg(&tls)
        .arg("--out")
        .arg(dir.join("received.ndjson"))
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("receive ended before it listened")
            .unwrap();
        if let Some(rest) = line.strip_prefix("receiving on https://") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Receiver {
        child,
        addr,
        ca: tls.join("ca.pem"),
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn client_config(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS connection whose handshake has not been driven yet.
fn connect(addr: SocketAddr, ca_pem: &[u8]) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let conn = rustls::ClientConnection::new(
        client_config(ca_pem),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

fn handshake(s: &mut Tls) -> std::io::Result<()> {
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(())
}

fn tls(addr: SocketAddr, ca: &Path) -> Tls {
    let mut s = connect(addr, &std::fs::read(ca).unwrap());
    handshake(&mut s).unwrap();
    s
}

/// Whether the server closed `s` (end of stream or reset) within its read timeout.
fn closed(s: &mut impl Read) -> bool {
    let mut b = [0u8; 256];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Reads one response; its status and body.
fn response(s: &mut Tls) -> (u16, String) {
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed before a response");
        got.extend_from_slice(&b[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                let status = text[9..12].parse().unwrap();
                return (status, text[end + 4..end + 4 + len].to_string());
            }
        }
    }
}

/// A GET, which the receiver answers 405: enough to see that it serves.
fn get(s: &mut Tls) -> u16 {
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    response(s).0
}

/// The head of a POST that passes the checks made before the body is read.
fn post_head(len: usize, key: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "POST /intake HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len}\r\n\
         Idempotency-Key: {key}\r\nX-PNP-Timestamp: {now}\r\nX-PNP-Signature: v2=00\r\n\r\n"
    )
}

#[test]
fn slow_heads_are_closed_within_the_header_timeout() {
    let d = tempfile::tempdir().unwrap();
    let rx = receive(d.path(), &["--header-timeout-secs", "1"]);
    let started = Instant::now();
    // Half a request head after the handshake, and connections that never start TLS.
    let mut slow: Vec<Tls> = (0..20)
        .map(|_| {
            let mut s = tls(rx.addr, &rx.ca);
            s.write_all(b"POST /intake HTTP/1.1\r\nHost: local")
                .unwrap();
            s
        })
        .collect();
    let mut silent: Vec<TcpStream> = (0..10)
        .map(|_| {
            let s = TcpStream::connect(rx.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .collect();
    for s in &mut slow {
        assert!(closed(s), "a slow head was not closed");
    }
    for s in &mut silent {
        assert!(
            closed(s),
            "a connection without a TLS handshake was not closed"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    // And the receiver still serves.
    assert_eq!(get(&mut tls(rx.addr, &rx.ca)), 405);
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let d = tempfile::tempdir().unwrap();
    let rx = receive(
        d.path(),
        &["--idle-timeout-secs", "1", "--header-timeout-secs", "30"],
    );
    let mut s = tls(rx.addr, &rx.ca);
    assert_eq!(get(&mut s), 405, "served, and kept alive");
    let t = Instant::now();
    assert!(closed(&mut s), "the idle connection was kept open");
    assert!(t.elapsed() < Duration::from_secs(4));
    // A body that stops coming is idle too.
    let mut s = tls(rx.addr, &rx.ca);
    s.write_all(post_head(1000, "k-stalled").as_bytes())
        .unwrap();
    s.write_all(&[b' '; 10]).unwrap();
    s.flush().unwrap();
    assert!(closed(&mut s), "a stalled body kept its connection");
}

/// A body trickled a byte at a time, each before the idle timeout, is still answered 408 once the
/// whole request has taken the idle timeout: it cannot hold a request slot for as long as it likes.
#[test]
fn a_trickled_body_is_answered_408_within_the_idle_timeout() {
    let d = tempfile::tempdir().unwrap();
    let rx = receive(
        d.path(),
        &["--idle-timeout-secs", "2", "--header-timeout-secs", "30"],
    );
    let mut s = tls(rx.addr, &rx.ca);
    s.write_all(post_head(1000, "k-trickled").as_bytes())
        .unwrap();
    s.flush().unwrap();
    s.sock
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let t = Instant::now();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while t.elapsed() < Duration::from_secs(10)
        && !String::from_utf8_lossy(&got).contains("\r\n\r\n")
    {
        if s.write_all(b" ").and_then(|()| s.flush()).is_err() {
            break;
        }
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 408"),
        "{text:?} after {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // And the receiver still serves.
    assert_eq!(get(&mut tls(rx.addr, &rx.ca)), 405);
}

#[test]
fn connections_over_the_cap_wait_and_are_served_once_others_close() {
    let d = tempfile::tempdir().unwrap();
    let rx = receive(
        d.path(),
        &["--max-connections", "3", "--header-timeout-secs", "30"],
    );
    let held: Vec<Tls> = (0..3).map(|_| tls(rx.addr, &rx.ca)).collect();
    // The fourth is in the kernel's backlog: its handshake gets no answer while three are held.
    let mut fourth = connect(rx.addr, &std::fs::read(&rx.ca).unwrap());
    fourth
        .sock
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let e = handshake(&mut fourth).expect_err("a fourth connection was served");
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );
    drop(held);
    fourth
        .sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    handshake(&mut fourth).unwrap();
    assert_eq!(get(&mut fourth), 405);
    assert_eq!(get(&mut tls(rx.addr, &rx.ca)), 405);
}

#[test]
fn bodies_over_the_caps_are_refused_before_they_are_read() {
    let d = tempfile::tempdir().unwrap();
    let rx = receive(
        d.path(),
        &[
            "--max-body-bytes",
            "1048576",
            "--max-inflight-bytes",
            "1048576",
        ],
    );
    // Over the per-request cap: 413 on the head alone, the body never sent.
    let mut s = tls(rx.addr, &rx.ca);
    s.write_all(post_head(64 << 20, "k-big").as_bytes())
        .unwrap();
    let (status, body) = response(&mut s);
    assert_eq!(status, 413, "{body}");
    // The total: one body under way holds the whole budget, so a second one is told to retry.
    let mut first = tls(rx.addr, &rx.ca);
    first
        .write_all(post_head(1 << 20, "k-first").as_bytes())
        .unwrap();
    first.write_all(&[b' '; 1000]).unwrap();
    first.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut second = tls(rx.addr, &rx.ca);
    second
        .write_all(post_head(1000, "k-second").as_bytes())
        .unwrap();
    let (status, body) = response(&mut second);
    assert_eq!(status, 503, "{body}");
    // Once the first is done (here: refused for its signature), the budget is back.
    first.write_all(&vec![b' '; (1 << 20) - 1000]).unwrap();
    assert_eq!(response(&mut first).0, 401);
    let mut third = tls(rx.addr, &rx.ca);
    third
        .write_all(post_head(1000, "k-third").as_bytes())
        .unwrap();
    third.write_all(&[b' '; 1000]).unwrap();
    assert_eq!(response(&mut third).0, 401, "read, then refused unsigned");
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn receive_keeps_its_ca_and_certificate_across_restarts() {
    let d = tempfile::tempdir().unwrap();
    let tls_dir = d.path().join("tls");
    let rx = receive(d.path(), &[]);
    let ca = std::fs::read(&rx.ca).unwrap();
    let cert = std::fs::read(tls_dir.join("cert.pem")).unwrap();
    drop(rx);
    #[cfg(unix)]
    for key in ["key.pem", "ca-key.pem"] {
        assert_eq!(mode(&tls_dir.join(key)), 0o600, "{key}");
    }

    // Restarted: the same CA and certificate, and a client trusting the first CA connects.
    let rx = receive(d.path(), &[]);
    assert_eq!(std::fs::read(&rx.ca).unwrap(), ca);
    assert_eq!(std::fs::read(tls_dir.join("cert.pem")).unwrap(), cert);
    let mut s = connect(rx.addr, &ca);
    handshake(&mut s).unwrap();
    assert_eq!(get(&mut s), 405);
    drop(rx);

    // The certificate lost: a new one from the same CA, still trusted.
    std::fs::remove_file(tls_dir.join("cert.pem")).unwrap();
    let rx = receive(d.path(), &[]);
    assert_eq!(std::fs::read(&rx.ca).unwrap(), ca);
    let mut s = connect(rx.addr, &ca);
    handshake(&mut s).unwrap();
    assert_eq!(get(&mut s), 405);
    drop(rx);

    // A certificate that is not the CA's (made elsewhere): replaced, not served.
    let other = d.path().join("other");
    pnp_gateway::receiver::make_certs(&other).unwrap();
    std::fs::copy(other.join("cert.pem"), tls_dir.join("cert.pem")).unwrap();
    std::fs::copy(other.join("key.pem"), tls_dir.join("key.pem")).unwrap();
    let rx = receive(d.path(), &[]);
    let mut s = connect(rx.addr, &ca);
    handshake(&mut s).unwrap();
    assert_eq!(get(&mut s), 405);
}

/// The case: strangers holding connections to `run --metrics-listen` under a small
/// descriptor limit. The metrics endpoint takes 16 connections at a time, so the rest wait in the
/// kernel's backlog instead of taking the descriptors ingest and delivery need.
#[cfg(target_os = "linux")]
#[test]
fn strangers_on_the_metrics_port_do_not_stop_ingest_or_delivery() {
    let d = tempfile::tempdir().unwrap();
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    success(&cli(&["keys", "init"], &cfg));
    // The exports are held back until the strangers are connected.
    let exports = cfg.parent().unwrap().join("exports");
    let held = d.path().join("held");
    std::fs::rename(&exports, &held).unwrap();
    for p in ["sandiego", "generic"] {
        std::fs::create_dir_all(exports.join(p)).unwrap();
    }
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_pnp-gateway"))
        .args(["run", "--metrics-listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("run ended").unwrap();
        if let Some(a) = line
            .strip_prefix("metrics on http://")
            .and_then(|r| r.strip_suffix("/metrics"))
        {
            break a.parse().unwrap();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let strangers: Vec<_> = (0..160)
        .map(|_| {
            std::thread::spawn(move || TcpStream::connect_timeout(&addr, Duration::from_secs(1)))
        })
        .collect();
    let strangers: Vec<TcpStream> = strangers
        .into_iter()
        .filter_map(|t| t.join().unwrap().ok())
        .collect();
    assert!(strangers.len() > 128, "{} connected", strangers.len());
    for p in ["sandiego", "generic"] {
        for f in std::fs::read_dir(held.join(p)).unwrap() {
            let f = f.unwrap().path();
            std::fs::rename(&f, exports.join(p).join(f.file_name().unwrap())).unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delivered = 0;
    while Instant::now() < deadline && delivered < DEMO_ELIGIBLE as i64 {
        std::thread::sleep(Duration::from_millis(300));
        delivered = outbox_count(&cfg, "dhhr-program", "delivered");
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(strangers);
    assert_eq!(
        delivered, DEMO_ELIGIBLE as i64,
        "ingest and delivery stopped"
    );
}

/// The case: 48 strangers sending 15 MiB bodies each (each under the per-request cap) made
/// the receiver hold about 720 MiB; the total budget (64 MiB by default) bounds it.
#[cfg(target_os = "linux")]
#[test]
fn many_large_bodies_at_once_stay_within_the_memory_budget() {
    let d = tempfile::tempdir().unwrap();
    let rx = receive(d.path(), &[]);
    let peak = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", rx.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let before = peak();
    let (addr, ca) = (rx.addr, std::fs::read(&rx.ca).unwrap());
    let senders: Vec<_> = (0..48)
        .map(|i| {
            let ca = ca.clone();
            std::thread::spawn(move || {
                let mut s = connect(addr, &ca);
                s.sock
                    .set_read_timeout(Some(Duration::from_secs(15)))
                    .unwrap();
                handshake(&mut s).unwrap();
                let len = 15 << 20;
                let chunk = vec![b' '; 64 << 10];
                let mut sent = s.write_all(post_head(len, &format!("k-{i}")).as_bytes());
                let mut left = len;
                while sent.is_ok() && left > 0 {
                    let n = left.min(chunk.len());
                    sent = s.write_all(&chunk[..n]);
                    left -= n;
                }
                let _ = s.flush();
                // The answer's first line; a sender cut off mid-body (503 and closed) may get none.
                let mut answer = [0u8; 12];
                let n = s.read(&mut answer).unwrap_or(0);
                String::from_utf8_lossy(&answer[..n]).to_string()
            })
        })
        .collect();
    let answers: Vec<String> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    let grew_mib = (peak() - before) / 1024;
    let read = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 401"))
        .count();
    eprintln!("the receiver grew by {grew_mib} MiB; {read} of 48 bodies read");
    assert!(grew_mib < 200, "the receiver grew by {grew_mib} MiB");
    assert!(read < 48, "every body was read");
}
