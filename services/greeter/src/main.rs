//! The `greeter` service binary.

fn main() -> std::process::ExitCode {
    worker_kit::runner::main_with_docs(greeter::SERVICE, greeter::asyncapi, greeter::build)
}
