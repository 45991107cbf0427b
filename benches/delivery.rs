//! Delivery throughput, from the outbox to local receivers, through the real dispatcher:
//! consent re-checked per row, payload decrypted, sent, outcome and audit entry written (group
//! commits, `synchronous=FULL`). Prints deliveries per second for:
//!   - HTTPS, one request per referral, to the reference receiver (hyper + rustls, same process,
//!     its own thread), and with `batch_max = 100`;
//!   - HL7 v2 REF^I12 over MLLP, each message ACKed (a minimal ACK-ing peer on its own thread);
//!   - Kafka, to librdkafka's mock cluster.
//!
//! Run: `cargo bench --bench delivery` (PNP_BENCH_N referrals per case, default 20000;
//! PNP_BENCH_ONLY=batch runs only the cases whose name contains it).
//! Both cores are shared by the gateway and its peers, as on a one-box deployment.

use pnp_gateway::config::Gateway;
use pnp_gateway::deliver::{Dispatcher, dispatch};
use pnp_gateway::store::Store;
use pnp_gateway::store::outbox::{NewRow, SealKey};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

const AUDIT_KEY: &[u8] = b"bench-audit-key-0123456789abcdef0123";
const SECRET: &str = "bench-shared-secret-0123456789abcdef";

fn payload(i: usize) -> serde_json::Value {
    serde_json::json!({
        "consent": {"expires_on": "2027-12-31", "id": "C-2026-001", "information": ["identity", "contact", "referral"],
                    "purpose": "treatment_referral", "recipient": "prestera"},
        "incident": {"action": "new", "category": "overdose", "eligible": true, "naloxone_administered": true,
                     "times": {"received": "2026-03-01T01:12:40-05:00"}},
        "notice": "42 CFR part 2 prohibits unauthorized use or disclosure of these records.",
        "person": {"address": {"street": format!("{i} EXAMPLE AVE")}, "dob": "1990-07-04",
                   "name": {"first": "JANE", "last": "DOE", "middle": "Q"}, "phones": ["3045550100"],
                   "race": "W", "role": "subject", "sex": "female"},
        "profile": "consented-referral",
        "referral": {"engaged_on": "2026-03-01", "engagement": format!("E-{i}"), "prss": "PRSS-01",
                     "prss_certified": true, "service": "mat"}
    })
}

/// A store with `n` referrals queued for `prestera`, delivered as `deliver` says; the time
/// `dispatch` takes to deliver them all.
fn case(name: &str, deliver: &str, n: usize) {
    if std::env::var("PNP_BENCH_ONLY").is_ok_and(|only| !name.contains(&only)) {
        return;
    }
    let d = tempfile::tempdir().expect("tempdir");
    let cfg = d.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"gateway.db\"\n\n[[destination]]\nid = \"prestera\"\nprofile = \"consented-referral\"\n\
             designations = [\"sud_treatment_provider\"]\ndeliver = {deliver}\n"
        ),
    )
    .expect("config");
    let gw = Gateway::load(&cfg).expect("gateway config");
    let mut store = Store::open(&gw.store_path).expect("store");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let consents =
        pnp_gateway::ingest::records::read_consents(&root.join("examples/demo/prss/consents.json"))
            .expect("consents");
    let first: Vec<_> = consents
        .rows
        .iter()
        .take(1)
        .map(|(_, c)| (&c.consent, None))
        .collect();
    store
        .import_consents(&first, true)
        .expect("consent C-2026-001");
    let seal = SealKey::from_secret(b"bench-outbox-key-0123456789abcdef");
    let fields = vec!["person.name.last".to_string()];
    store.begin().expect("begin");
    for i in 0..n {
        let p = payload(i);
        store
            .enqueue(
                &seal,
                &NewRow {
                    destination: "prestera",
                    adapter: "generic-cad-csv",
                    incident_id: &format!("2026-{i:07}"),
                    profile: "consented-referral",
                    consent_id: Some("C-2026-001"),
                    person_token: None,
                    fields: &fields,
                    payload: &p,
                    payload_digest: &format!("{i:064}"),
                },
            )
            .expect("enqueue");
    }
    store.commit().expect("commit");
    let today = "2026-11-27".parse().expect("date");
    let mut state = Dispatcher::default();
    let t = Instant::now();
    let mut delivered = 0u64;
    while delivered < n as u64 {
        let s = dispatch(&mut store, &gw, &seal, AUDIT_KEY, today, &mut state).expect("dispatch");
        let got: u64 = s.delivered.values().sum();
        let failed: u64 = s.retried.values().sum::<u64>() + s.dead.values().sum::<u64>();
        assert_eq!(failed, 0, "{name}: failures {s:?}");
        delivered += got;
        if got == 0 {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(delivered, n as u64, "{name}: not all delivered");
    println!(
        "{name:<38} {n:>7} referrals in {secs:>6.2} s = {:>8.0} deliveries/s",
        n as f64 / secs
    );
}

/// An MLLP peer that ACKs every message with AA, MSA-2 = its MSH-10.
fn mllp_acker() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut w = conn.try_clone().expect("clone");
                let mut r = conn;
                let mut reader = pnp_gateway::deliver::mllp::FrameReader::new(1 << 20);
                while let Ok(f) = reader.read_frame(&mut r) {
                    let text = String::from_utf8_lossy(&f);
                    let control = text
                        .split('\r')
                        .next()
                        .and_then(|msh| msh.split('|').nth(9))
                        .unwrap_or("")
                        .to_string();
                    let ack = format!(
                        "MSH|^~\\&|INTAKE||PNP-GATEWAY||20260101000000||ACK^I12^ACK|A{control}|P|2.5.1\rMSA|AA|{control}\r"
                    );
                    if w.write_all(&pnp_gateway::deliver::mllp::frame(ack.as_bytes()))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn main() {
    let n: usize = std::env::var("PNP_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) =
        pnp_gateway::receiver::make_certs(&dir.path().join("tls")).expect("certs");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("secret");
    let rx = pnp_gateway::receiver::start(
        "127.0.0.1:0".parse().expect("addr"),
        &cert,
        &key,
        SECRET.as_bytes().to_vec(),
        None,
    )
    .expect("receiver");
    let https = |batch: usize, concurrency: usize| {
        format!(
            "{{ kind = \"webhook\", url = \"https://localhost:{}/intake\", secret_file = \"{}\", ca_file = \"{}\", batch_max = {batch}, concurrency = {concurrency} }}",
            rx.addr.port(),
            secret.display(),
            ca.display()
        )
    };
    println!("delivery benchmark: {n} referrals per case");
    case("https, 1 per request, 1 at a time", &https(1, 1), n);
    case("https, 1 per request, 4 at a time", &https(1, 4), n);
    case("https, batch_max = 100, 1 at a time", &https(100, 1), n);
    case("https, batch_max = 100, 4 at a time", &https(100, 4), n);
    let mllp = mllp_acker();
    for c in [1, 2, 4] {
        case(
            &format!("hl7 REF^I12 over MLLP, {c} conn"),
            &format!("{{ kind = \"hl7\", address = \"{mllp}\", concurrency = {c} }}"),
            n,
        );
    }
    let mock = rdkafka::mocking::MockCluster::new(3).expect("mock cluster");
    mock.create_topic("pnp.referrals", 3, 3).expect("topic");
    case(
        "kafka (mock cluster, acks=all)",
        &format!(
            "{{ kind = \"kafka\", brokers = \"{}\", topic = \"pnp.referrals\" }}",
            mock.bootstrap_servers()
        ),
        n,
    );
    let c = rx.counts();
    println!(
        "receiver: {} requests, {} payloads accepted, {} duplicates",
        c.requests, c.accepted, c.duplicates
    );
}
