//! The `catalog` service binary: settings from the environment, runs until SIGINT/SIGTERM.

fn main() -> std::process::ExitCode {
    worker_kit::runner::main_with_docs(catalog::SERVICE, catalog::asyncapi, catalog::build)
}
