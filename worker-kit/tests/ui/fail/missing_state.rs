use std::convert::Infallible;
use worker_kit::rpc::RpcWorker;
use worker_kit::{Payload, Runner, State};

#[worker_kit::rpc("count")]
async fn count(State(n): State<u32>, Payload(_): Payload<()>) -> Result<u32, Infallible> {
    Ok(n)
}

// The routes need a `u32` that was never given (`.with_state(7)` is missing).
fn build(runner: Runner) -> Runner {
    runner.register_worker(RpcWorker::new().register(count))
}

fn main() {
    let _ = build;
}
