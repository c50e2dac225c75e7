//! `pagerbridge config check` as an operator runs it.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_pagerbridge");

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pagerbridge.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_problem_is_named_with_its_line_and_the_exit_code_says_so() {
    let (code, _, err) = check(
        "[routing]\ndefault_routing_key = \"short\"\n\n[[rules]]\nmatch = { field = \"host\", regex = \"(\" }\n\n[outbox]\nmax_in_flight = 0\n",
    );
    assert_eq!(code, 2);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].contains("pagerbridge.toml:2:23: routing.default_routing_key:"),
        "{err}"
    );
    assert!(
        lines[1].contains(
            "pagerbridge.toml:5:35: rules[0].match.regex: not a valid regular expression"
        ),
        "{err}"
    );
    assert!(
        lines[2].contains("pagerbridge.toml:8:17: outbox.max_in_flight:"),
        "{err}"
    );
}

#[test]
fn a_valid_file_is_summarised() {
    let (code, out, _) = check(
        "[routing]\ndefault_routing_key = \"a1b2c3d4e5f60718293a4b5c6d7e8f90\"\n[[rules]]\nseverity = \"info\"\n",
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("valid: 1 rule, a default routing key"),
        "{out}"
    );
}

#[test]
fn a_missing_file_is_exit_3() {
    let out = Command::new(BIN)
        .args([
            "config",
            "check",
            "--config",
            "/nonexistent/pagerbridge.toml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/pagerbridge.toml"));
}
