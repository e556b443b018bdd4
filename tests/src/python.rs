//! Python peers: a virtualenv under target/ (created once, python3 -m venv + pip) with
//! aio-pika from PyPI, and whatever else a test's script imports, and the scripts in
//! tests/interop.

use std::path::PathBuf;
use std::process::Command;

/// The workspace's root directory.
///
/// # Panics
///
/// Never in practice: this crate sits one level below the root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The script `name` in tests/interop.
pub fn script(name: &str) -> PathBuf {
    workspace_root().join("tests").join("interop").join(name)
}

/// The virtualenv's python with aio-pika, creating the virtualenv if needed. Blocks (run it
/// with `spawn_blocking` in an async test).
///
/// # Panics
///
/// When python3 is missing or pip cannot install (PyPI not reachable).
pub fn python() -> PathBuf {
    python_with(&[], &[])
}

/// As [`python`], with `packages` (pip requirement specifiers) installed too: pip runs when
/// aio-pika or one of the `modules` does not import.
///
/// # Panics
///
/// As [`python`].
pub fn python_with(packages: &[&str], modules: &[&str]) -> PathBuf {
    // One installer at a time within a test binary; cargo runs test binaries one after
    // another, so binaries do not race on the virtualenv either.
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = CREATING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let venv = workspace_root().join("target").join("interop-venv");
    let py = venv.join("bin").join("python");
    if !py.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is installed");
        assert!(status.success(), "python3 -m venv failed");
    }
    let imports = std::iter::once("aio_pika")
        .chain(modules.iter().copied())
        .collect::<Vec<_>>()
        .join(", ");
    // A missing module is the expected answer on a first run: its traceback is not shown.
    let ok = Command::new(&py)
        .args(["-c", &format!("import {imports}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let status = Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "aio-pika>=9,<10"])
            .args(packages)
            .status()
            .expect("pip runs");
        assert!(
            status.success(),
            "pip install aio-pika {packages:?} failed (PyPI reachable?)"
        );
    }
    py
}
