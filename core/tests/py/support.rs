//! Runs the Python cross-check scripts of this directory with the interpreter from
//! `$DASTRA_PYTHON` (or the venv `scripts/tools.sh` creates), failing with a clear message when it
//! is missing — never skipping.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The Python interpreter with fastavro and confluent-kafka.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("DASTRA_PYTHON") {
        return PathBuf::from(p);
    }
    let tools = std::env::var_os("DASTRA_TOOLS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/dastra-connect/tools")
    });
    let p = tools.join("venv/bin/python");
    assert!(
        p.exists(),
        "Python with fastavro/confluent-kafka not found: set DASTRA_PYTHON or run \
         `eval \"$(bash scripts/tools.sh)\"` (looked for {})",
        p.display()
    );
    p
}

/// Runs `core/tests/py/<script>` with `args`, feeding `input` as JSON on stdin; returns its JSON
/// stdout. Panics with the script's stderr when it fails.
pub fn run(script: &str, args: &[&str], input: &serde_json::Value) -> serde_json::Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    let mut child = Command::new(python())
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    let mut stdin = child.stdin.take().expect("stdin");
    let text = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().expect("python runs");
    writer.join().expect("join").expect("write stdin");
    assert!(out.status.success(), "{script} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("script prints JSON")
}
