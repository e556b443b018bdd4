//! The `example` service binary: settings from the environment, runs until SIGINT/SIGTERM;
//! `example asyncapi` prints its AsyncAPI document.

fn main() -> std::process::ExitCode {
    worker_kit::runner::main_with_docs(example::SERVICE, example::asyncapi, example::build)
}
