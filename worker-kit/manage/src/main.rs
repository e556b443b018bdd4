//! `manage`: schema drift between `models/<service>/**/*.sql` and a live database.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let opts =
        worker_kit_manage::Opts::parse_from(worker_kit_manage::normalize_args(std::env::args()));
    match worker_kit_manage::run(opts).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("manage: {e:#}");
            ExitCode::from(1)
        }
    }
}
