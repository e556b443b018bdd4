//! The `__SERVICE__` service binary: settings from the environment, runs until
//! SIGINT/SIGTERM; `__SERVICE__ asyncapi` prints its AsyncAPI document.

fn main() -> std::process::ExitCode {
    worker_kit::runner::main_with_docs(__SERVICE__::SERVICE, __SERVICE__::asyncapi, __SERVICE__::build)
}
