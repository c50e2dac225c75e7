//! Shell completions and manual pages, generated from the command line's definition, and the
//! help text operators read first.

mod support;

use support::pb;

/// The page's title line: the first, after the definition of the apostrophe string
/// (`.ie \n(.g .ds Aq \(aq` / `.el .ds Aq '`) that clap_mangen puts first.
fn title_line(page: &str) -> Option<&str> {
    page.lines()
        .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
        .filter(|l| l.starts_with(".TH "))
}

#[test]
fn completions_for_every_shell_know_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = pb(&["completions", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(out.stdout.contains("pagerbridge"), "{shell}");
        for word in ["incident", "maintenance", "resolve"] {
            assert!(out.stdout.contains(word), "{shell} completion lacks {word}");
        }
    }
    let bash = pb(&["completions", "bash"]).stdout;
    assert!(bash.contains("complete -F"), "a bash completion function");
    assert!(bash.contains("--rest-url"), "flags are completed too");

    let out = pb(&["completions", "tcsh"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn man_prints_the_main_page_and_writes_one_per_subcommand() {
    let out = pb(&["man"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        title_line(&out.stdout),
        Some(".TH pagerbridge 1  \"pagerbridge 0.1.0\" ")
    );
    assert!(out.stdout.contains("incident"));

    let dir = tempfile::TempDir::new().unwrap();
    let out_dir = dir.path().join("man1");
    let out = pb(&["man", "--out-dir", out_dir.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for page in [
        "pagerbridge.1",
        "pagerbridge-incident.1",
        "pagerbridge-incident-list.1",
        "pagerbridge-incident-ack.1",
        "pagerbridge-service-show.1",
        "pagerbridge-maintenance-create.1",
        "pagerbridge-queue-status.1",
    ] {
        let path = out_dir.join(page);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{page}: {e}"));
        let name = page.trim_end_matches(".1");
        assert!(
            title_line(&text).is_some_and(|l| l.starts_with(&format!(".TH {name} 1 "))),
            "{page}: {}",
            &text[..200.min(text.len())]
        );
        assert!(
            out.stdout.lines().any(|l| l == path.to_str().unwrap()),
            "{page} is listed: {}",
            out.stdout
        );
    }
    let list = std::fs::read_to_string(out_dir.join("pagerbridge-incident-list.1")).unwrap();
    assert!(list.contains("\\-\\-since"), "the flags are documented");
    assert!(list.contains("Exit codes"), "and the exit codes");
    assert!(
        !out_dir.join("pagerbridge-help.1").exists(),
        "no page for `help`"
    );
}

#[test]
fn help_shows_examples_and_exit_codes() {
    let out = pb(&["incident", "ack", "--help"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("jq -r '.[].id' | pagerbridge incident ack -"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("5  authentication"), "{}", out.stdout);
    let out = pb(&["incident", "list", "-h"]);
    assert!(out.stdout.contains("Examples:"), "{}", out.stdout);
    let out = pb(&["--help"]);
    for command in ["incident", "service", "maintenance", "completions", "man"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(command)),
            "{command} in\n{}",
            out.stdout
        );
    }
}
