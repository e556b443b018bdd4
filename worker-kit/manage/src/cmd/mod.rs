//! One module per subcommand, and what they share.

pub(crate) mod diff;
pub(crate) mod pending;
pub(crate) mod sync;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};

use crate::catalog::Catalog;
use crate::load::{ModelFile, load_into, load_models};
use crate::opts::ServiceArgs;
use crate::target::{Server, Shadow};

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

/// A fingerprint of what a shadow holds: the files' paths and texts.
fn fingerprint(files: &[ModelFile], dump: bool) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dump.hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    for f in files {
        f.path.hash(&mut h);
        f.text.hash(&mut h);
    }
    format!("manage shadow {:016x}", h.finish())
}

/// The catalog of `files` (model files, or a dump when `dump`), through a shadow database
/// named after `for_db` and `role`. The shadow is kept between runs and reused while the
/// files are unchanged, so a no-op sync does not reload the schema; it is reset and
/// reloaded when they change, and dropped when loading fails.
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
    let print = fingerprint(files, dump);
    if let Some(shadow) = Shadow::existing(server, for_db, role, &print).await? {
        return Catalog::read(&shadow.connect().await?).await;
    }
    let shadow = Shadow::create(server, for_db, role).await?;
    let loaded = async {
        let client = shadow.connect().await?;
        load_into(&client, files, dump).await?;
        drop(client);
        // A fresh connection: the dump may have changed the session's search_path.
        let client = shadow.connect().await?;
        let catalog = Catalog::read(&client).await?;
        shadow.mark(&print).await?;
        Ok::<_, anyhow::Error>(catalog)
    }
    .await;
    if loaded.is_err() {
        shadow.drop().await;
    }
    loaded
}

/// The desired catalog of a models directory.
pub(crate) async fn catalog_of_models(
    server: &Server,
    for_db: &str,
    dir: &Path,
) -> anyhow::Result<Catalog> {
    let files = load_models(dir)?;
    catalog_of_files(server, for_db, "models", &files, false).await
}

/// The catalog of a `pg_dump --schema-only` file.
pub(crate) async fn catalog_of_dump(
    server: &Server,
    for_db: &str,
    path: &PathBuf,
) -> anyhow::Result<Catalog> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let file = ModelFile {
        path: path.clone(),
        text,
    };
    catalog_of_files(server, for_db, "dump", &[file], true).await
}
