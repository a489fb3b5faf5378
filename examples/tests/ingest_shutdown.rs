//! The main job stops gracefully on SIGTERM mid-run: it drains, and the SQLite table holds a
//! row for exactly the orders acknowledged as written (the program checks it and exits
//! non-zero otherwise).
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_mid_run_drains_and_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("weir-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ingest"))
        .args(["--orders", "50000000"])
        .env_remove("AMQP_URL")
        .env_remove("DATABASE_URL")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it write for a while (it cannot finish 50 million orders in this time).
    let database = dir.join("target/ingest.sqlite");
    let started = Instant::now();
    while !database.exists() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("signal: draining"), "{stdout}");
    assert!(stdout.contains("graceful: true"), "{stdout}");
    assert!(!stdout.contains("ok: every order"), "it was stopped before the end: {stdout}");
    let _cleanup = std::fs::remove_dir_all(&dir);
}
