//! The `example` service binary: settings from the environment, runs until SIGINT/SIGTERM.

fn main() -> std::process::ExitCode {
    worker_kit::runner::main(example::SERVICE, example::build)
}
