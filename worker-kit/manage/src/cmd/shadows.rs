//! `manage shadows list|prune`.

use std::process::ExitCode;

use crate::opts::{ShadowsAction, ShadowsArgs};
use crate::target::{Server, Shadow, service_dsn};

pub(crate) async fn run(args: ShadowsArgs) -> anyhow::Result<ExitCode> {
    let dsn = service_dsn(args.database_url.as_deref(), "postgres");
    let (server, _) = Server::from_dsn(&dsn)?;
    match args.action {
        ShadowsAction::List => {
            for s in Shadow::list(&server).await? {
                let of = match (&s.target, s.target_exists) {
                    (Some(t), Some(true)) => format!("kept for {t}"),
                    (Some(t), _) => {
                        format!("kept for {t}, which no longer exists (prune drops it)")
                    }
                    (None, _) => "made for one run (diff, pending)".to_owned(),
                };
                println!("{}\t{of}", s.name);
            }
        }
        ShadowsAction::Prune => {
            let dropped = Shadow::prune(&server).await?;
            for name in &dropped {
                println!("dropped {name}");
            }
            println!(
                "{} shadow database(s) of targets that no longer exist dropped.",
                dropped.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
