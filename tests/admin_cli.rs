//! `portsentry blocked ...` command line through the built binary (no root needed): usage
//! errors exit 2 with a clear message, help exits 0, and the daemon's own command line is
//! untouched by the dispatch.

use assert_cmd::Command;
use predicates::prelude::*;

fn ps() -> Command {
    Command::cargo_bin("portsentry").unwrap()
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    ps().arg("blocked")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Usage: portsentry blocked"));
    ps().args(["blocked", "add", "10.0.0.1/8"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean 10.0.0.0/8?"));
    ps().args(["blocked", "del", "not-an-address"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not an IPv4 or IPv6 address"));
    ps().args(["blocked", "add", "192.0.2.1", "--timeout", "soon"])
        .assert()
        .code(2);
    ps().args(["blocked", "list", "--bogus"]).assert().code(2);
}

#[test]
fn help_lists_the_subcommands() {
    ps().args(["blocked", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("list"))
        .stdout(predicate::str::contains("flush"))
        .stdout(predicate::str::contains("--pidfile"));
}

#[test]
fn the_daemon_command_line_is_unchanged() {
    // `blocked` only selects the admin command as the first argument.
    ps().args(["-tcp", "blocked"]).assert().code(2);
    ps().assert()
        .code(2)
        .stderr(predicate::str::contains("Usage: portsentry"));
}
