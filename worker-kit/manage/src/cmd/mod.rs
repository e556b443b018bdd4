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

/// Loads `files` into a fresh shadow database (named after `for_db` and `role`) and reads
/// its catalog; the shadow is dropped whatever happens. `dump` reads the files as
/// `pg_dump` output.
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
    let shadow = Shadow::create(server, for_db, role).await?;
    let result = async {
        let client = shadow.connect().await?;
        load_into(&client, files, dump).await?;
        // A fresh connection: the dump may have changed the session's search_path.
        drop(client);
        let client = shadow.connect().await?;
        Catalog::read(&client).await
    }
    .await;
    shadow.drop().await;
    result
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
