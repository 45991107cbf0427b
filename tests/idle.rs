//! Idle cost of watch mode: `pnp-gateway run` watching an empty drop folder must not keep a core
//! busy. The bound here is generous (a loaded test machine, a debug build); the precise figure
//! comes from `scripts/bench-idle.sh`.

mod common;

use common::*;
use std::time::Duration;

/// CPU time (user + system) the process has used so far, from /proc/PID/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at field 3, the state.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    let tck = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse::<u64>().ok())
        .unwrap_or(100);
    Duration::from_millis((f[0] + f[1]) * 1000 / tck)
}

#[test]
fn watch_mode_idles_on_an_empty_drop_folder() {
    let d = tempfile::tempdir().unwrap();
    write_adapter(
        d.path(),
        "small",
        "kind = \"csv\"\n[transport]\npattern = \"*.csv\"",
        SMALL_MAPPING,
    );
    let cfg = d.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        "[store]\npath = \"state/g.db\"\n[[pipeline]]\nadapter = \"small\"\nfolder = \"drop\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.path().join("drop")).unwrap();
    let mut child = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Past start-up (store opened, migrations, first scan).
    std::thread::sleep(Duration::from_millis(1500));
    let window = Duration::from_secs(5);
    let before = cpu_time(child.id());
    std::thread::sleep(window);
    let used = cpu_time(child.id()) - before;
    child.kill().unwrap();
    child.wait().unwrap();
    let share = used.as_secs_f64() / window.as_secs_f64();
    eprintln!("idle watch mode: {:.1}% of a core", share * 100.0);
    assert!(
        share < 0.10,
        "watch mode used {:.0}% of a core while idle",
        share * 100.0
    );
}
