//! The `greeter` service binary.

fn main() -> std::process::ExitCode {
    worker_kit::runner::main(greeter::SERVICE, greeter::build)
}
