//! The route macros: the errors for what does not compile (what does: `macro_routes.rs`).

use std::io::Write;

#[test]
fn route_macros() {
    // Straight to stderr, past the test harness's capture: the first run in a checkout
    // compiles worker-kit and its dependencies again in trybuild's own target directory.
    let _ = writeln!(
        std::io::stderr(),
        "route_macros: checking the macro cases that must not compile, with trybuild in target/tests/trybuild (the first run in a checkout checks every dependency again: a minute or more; later runs take seconds)"
    );
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
}
