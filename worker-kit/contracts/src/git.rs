//! The base revision's documents, read from git: `docs/asyncapi/*.json` as committed at
//! REF (CI keeps them current: the gate fails when they differ from what the services
//! print, see `scripts/contracts`).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::gate::Documents;

/// Where the documents live in the repository.
pub const DOCS_DIR: &str = "docs/asyncapi";

fn git(repo: &Path, args: &[&str]) -> Result<std::process::Output> {
    Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .with_context(|| format!("cannot run git {}", args.join(" ")))
}

fn git_ok(repo: &Path, args: &[&str]) -> Result<String> {
    let out = git(repo, args)?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The default base: the merge-base of `HEAD` with the `main` branch (or `origin/main`).
///
/// # Errors
///
/// Neither branch exists, or they share no history.
pub fn default_base(repo: &Path) -> Result<String> {
    let main = ["main", "origin/main"].into_iter().find(|b| {
        git(
            repo,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{b}^{{commit}}"),
            ],
        )
        .is_ok_and(|o| o.status.success())
    });
    let Some(main) = main else {
        bail!(
            "this checkout has no branch `main` (nor `origin/main`) to take the merge-base with: \
             pass the revision to stay compatible with, e.g. `--base origin/master` or `--base v1.2.0`"
        );
    };
    git_ok(repo, &["merge-base", "HEAD", main])
        .with_context(|| format!("HEAD and {main} share no history: pass --base REF"))
}

/// The documents committed at `base`: service name → document. A revision without the
/// directory has none (everything in the working tree is then new).
///
/// # Errors
///
/// `base` is not a commit, or a document is not JSON.
pub fn documents_at(repo: &Path, base: &str) -> Result<Documents> {
    let commit = format!("{base}^{{commit}}");
    let out = git(repo, &["rev-parse", "--verify", "--quiet", &commit])?;
    if !out.status.success() {
        bail!("`{base}` is not a commit in this repository (git rev-parse {commit} failed)");
    }
    let listing = git_ok(
        repo,
        &["ls-tree", "--name-only", base, &format!("{DOCS_DIR}/")],
    )?;
    let mut docs = Documents::new();
    for path in listing.lines().filter(|p| p.ends_with(".json")) {
        let text = git_ok(repo, &["show", &format!("{base}:{path}")])?;
        let doc =
            serde_json::from_str(&text).with_context(|| format!("{path} at {base} is not JSON"))?;
        docs.insert(service_of(path), doc);
    }
    Ok(docs)
}

/// The documents in directory `dir`: `SERVICE.json` files.
///
/// # Errors
///
/// The directory cannot be read, or a document is not JSON.
pub fn documents_in(dir: &Path) -> Result<Documents> {
    let mut docs = Documents::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let doc = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            docs.insert(service_of(&path.to_string_lossy()), doc);
        }
    }
    Ok(docs)
}

fn service_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.strip_suffix(".json").unwrap_or(file).to_owned()
}

/// The repository's top level, from `dir`.
///
/// # Errors
///
/// `dir` is not inside a git working tree.
pub fn top_level(dir: &Path) -> Result<std::path::PathBuf> {
    git_ok(dir, &["rev-parse", "--show-toplevel"])
        .map(Into::into)
        .context("not inside a git working tree")
}
