//! One module per subcommand, and what they share.

pub(crate) mod diff;
pub(crate) mod pending;
pub(crate) mod shadows;
pub(crate) mod sync;

use std::path::Path;

use anyhow::{anyhow, bail};

use crate::catalog::Catalog;
use crate::load::{ModelFile, load_into, load_models};
use crate::opts::ServiceArgs;
use crate::target::{Loader, Server, Shadow, digest};

/// The service to work on: the one given, or the only directory under the models dir.
pub(crate) fn service_name(args: &ServiceArgs) -> anyhow::Result<String> {
    if let Some(s) = &args.service {
        if !args.models_dir.join(s).is_dir() {
            bail!(
                "{} does not exist: --service names a directory of model files",
                args.models_dir.join(s).display()
            );
        }
        return Ok(s.clone());
    }
    let mut names: Vec<String> = std::fs::read_dir(&args.models_dir)
        .map_err(|e| {
            anyhow!(
                "{}: {e} (run from the repository root, or pass --models-dir)",
                args.models_dir.display()
            )
        })?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("{} holds no service directories", args.models_dir.display()),
        many => bail!(
            "several services have models ({}): choose one with --service",
            many.join(", ")
        ),
    }
}

/// A fingerprint of what a shadow holds: manage's version, the kind of load, and the files'
/// paths and texts, as a SHA-256 (stable across Rust releases, unlike `DefaultHasher`).
fn fingerprint(files: &[ModelFile], dump: bool) -> String {
    let mut bytes = Vec::new();
    let mut put = |b: &[u8]| {
        bytes.extend_from_slice(&(b.len() as u64).to_le_bytes());
        bytes.extend_from_slice(b);
    };
    put(env!("CARGO_PKG_VERSION").as_bytes());
    put(if dump { b"dump" } else { b"models" });
    for f in files {
        put(f.path.to_string_lossy().as_bytes());
        put(f.text.as_bytes());
    }
    digest(&bytes)
}

/// The catalog of `files` (model files, or a dump when `dump`), through a shadow database
/// kept for target `for_db` and `role`, loaded as manage's own unprivileged shadow role.
/// See [`catalog_with`].
///
/// # Errors
///
/// `file:line: message` when a statement fails; a server error otherwise.
pub async fn catalog_of_files(
    server: &Server,
    for_db: &str,
    role: &str,
    files: &[ModelFile],
    dump: bool,
) -> anyhow::Result<Catalog> {
    let loader = Loader::prepare(server, None).await?;
    catalog_with(server, &loader, for_db, role, files, dump).await
}

/// The catalog of `files` through the shadow kept for `for_db` and `role`, loaded as
/// `loader`. The shadow is kept between runs and reused while the files are unchanged and
/// the loader still owns it, so a no-op sync does not reload the schema; it is reset and
/// reloaded when they change, and dropped when loading fails.
///
/// # Errors
///
/// `file:line: message` when a statement fails; a server error otherwise.
pub async fn catalog_with(
    server: &Server,
    loader: &Loader,
    for_db: &str,
    role: &str,
    files: &[ModelFile],
    dump: bool,
) -> anyhow::Result<Catalog> {
    let print = fingerprint(files, dump);
    if let Some(shadow) = Shadow::existing(server, loader, for_db, role, &print).await? {
        return Catalog::read(&shadow.connect().await?).await;
    }
    let shadow = Shadow::create(server, loader, for_db, role).await?;
    let loaded = async {
        let client = shadow.connect().await?;
        load_into(&client, files, dump).await?;
        let catalog = Catalog::read(&client).await?;
        shadow.mark(for_db, &print).await?;
        Ok::<_, anyhow::Error>(catalog)
    }
    .await;
    if loaded.is_err() {
        shadow.drop().await;
    }
    loaded
}

/// The catalog of `files` through a shadow made for this call and dropped after it.
pub(crate) async fn catalog_once(
    server: &Server,
    loader: &Loader,
    role: &str,
    files: &[ModelFile],
    dump: bool,
) -> anyhow::Result<Catalog> {
    Ok(
        catalog_and_fingerprint_once(server, loader, role, files, dump)
            .await?
            .0,
    )
}

/// The catalog of `files` and the [`crate::fingerprint`] of their schema, through a shadow
/// made for this call and dropped after it.
pub(crate) async fn catalog_and_fingerprint_once(
    server: &Server,
    loader: &Loader,
    role: &str,
    files: &[ModelFile],
    dump: bool,
) -> anyhow::Result<(Catalog, String)> {
    let shadow = Shadow::temporary(server, loader, role).await?;
    let read = async {
        let client = shadow.connect().await?;
        load_into(&client, files, dump).await?;
        let catalog = Catalog::read(&client).await?;
        Ok((catalog, crate::fingerprint::of(&client).await?))
    }
    .await;
    shadow.drop().await;
    read
}

/// The model files of a directory.
pub(crate) fn model_files(dir: &Path) -> anyhow::Result<Vec<ModelFile>> {
    load_models(dir)
}

/// A `pg_dump --schema-only` file, as the one file of a dump load.
pub(crate) fn dump_file(path: &Path) -> anyhow::Result<Vec<ModelFile>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(vec![ModelFile {
        path: path.to_path_buf(),
        text,
    }])
}

/// Says which kinds of objects the desired schema has that manage does not compare, so a
/// plan (or "in sync") is not read as covering them.
pub(crate) fn print_not_compared(plan: &crate::Plan) {
    if !plan.not_compared.is_empty() {
        eprintln!(
            "Not compared (manage does not read these kinds; check them by hand): {}.",
            plan.not_compared.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The fingerprint decides whether a kept shadow is reused: it must not change with the
    // Rust release that built manage (DefaultHasher's output may), so it is a SHA-256.
    #[test]
    fn the_fingerprint_is_a_stable_digest() {
        let files = [ModelFile {
            path: "a.sql".into(),
            text: "CREATE TABLE t (id int);".into(),
        }];
        let print = fingerprint(&files, false);
        assert_eq!(print.len(), 64, "{print}");
        assert!(print.chars().all(|c| c.is_ascii_hexdigit()), "{print}");
        assert_ne!(print, fingerprint(&files, true));
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
