//! Tests that cannot run here say so in a way the summary of `scripts/pj test` counts.
//!
//! libtest knows only passed, failed and ignored (decided at compile time), and it captures
//! what a passing test prints, so a test that returns early for want of a cluster would show
//! as passed. [`skipped`] prints the reason (seen with `--nocapture`) and appends a line to the
//! file named by `PJ_SKIP_LOG` (set by scripts/test): `binary<TAB>test<TAB>reason`.

use std::io::Write;

/// The variable scripts/test sets to the file that collects skipped tests.
pub const SKIP_LOG_VAR: &str = "PJ_SKIP_LOG";

/// Records that the calling test is skipped, and why. The test then returns.
pub fn skipped(reason: &str) {
    eprintln!("skipped: {reason}");
    let Some(path) = std::env::var_os(SKIP_LOG_VAR) else {
        return;
    };
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let line = format!("{binary}\t{test}\t{}\n", reason.replace(['\t', '\n'], " "));
    // One short write in append mode: lines from tests running at once do not interleave.
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "could not record the skip in {}: {e}",
            path.to_string_lossy()
        );
    }
}
