//! `parked`: list, show, replay and purge a work-queue route's parked messages.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match worker_kit_parked::run(worker_kit_parked::Opts::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parked: {e:#}");
            ExitCode::from(1)
        }
    }
}
