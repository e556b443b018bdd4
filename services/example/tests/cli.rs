//! The binary's contract with whoever starts it: exit codes and one-line errors.

use std::process::Command;

fn example() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_example"));
    // A clean environment: no .env from the working directory, no inherited settings.
    c.env_clear().current_dir(std::env::temp_dir());
    c
}

#[test]
fn a_bad_setting_exits_2_with_one_line_naming_it() {
    let out = example().env("AMQP_PREFETCH", "lots").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "AMQP_PREFETCH=\"lots\": expected a whole number from 1 to 65535, e.g. AMQP_PREFETCH=64"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_broker_exits_1_saying_where_without_the_password() {
    let out = example()
        .env("AMQP_URL", "amqp://app:hunter2@127.0.0.1:1/%2f")
        .env("AMQP_CONNECT_TIMEOUT_MS", "300")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("could not connect to amqp://app:***@127.0.0.1:1/%2f"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
