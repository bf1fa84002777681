//! The command line's own surface: help, completions and the man page come from the same clap
//! definitions, so every command appears in each. No cluster.

use std::process::Command;

fn tagship(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tagship"))
        .args(args)
        .output()
        .expect("run tagship");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const COMMANDS: &[&str] = &[
    "deploy",
    "plan",
    "status",
    "rollback",
    "history",
    "check-compat",
    "trigger",
    "lock",
    "plugin",
];

#[test]
fn completions_and_the_man_page_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, script) = tagship(&["completions", shell]);
        assert_eq!(code, 0);
        for command in COMMANDS {
            assert!(
                script.contains(command),
                "{shell} completions miss {command}"
            );
        }
    }
    let (code, man) = tagship(&["man"]);
    assert_eq!(code, 0);
    assert!(
        man.starts_with(".ie") || man.contains(".TH tagship 1"),
        "{man}"
    );
    for command in COMMANDS {
        let roff = format!("tagship\\-{}(1)", command.replace('-', "\\-"));
        assert!(man.contains(&roff), "the man page misses {roff}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, _) = tagship(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    for command in COMMANDS {
        let page = dir.path().join(format!("tagship-{command}.1"));
        assert!(page.exists(), "{} was not written", page.display());
    }
}

#[test]
fn every_command_documents_the_exit_codes_and_its_flags() {
    let (code, help) = tagship(&["--help"]);
    assert_eq!(code, 0);
    assert!(help.contains("Exit codes:") && help.contains("6  a rollback failed"));
    for (command, flag) in [
        ("deploy", "--dry-run"),
        ("deploy", "--json-report"),
        ("plan", "--output"),
        ("rollback", "--force"),
        ("check-compat", "--allow-undecided"),
        ("trigger", "--token-env"),
    ] {
        let (code, help) = tagship(&[command, "--help"]);
        assert_eq!(code, 0, "{command} --help");
        assert!(help.contains(flag), "{command} --help misses {flag}");
    }
    let (code, _) = tagship(&["deploy", "--no-such-flag"]);
    assert_eq!(code, 2, "a bad flag is a usage error");
}
