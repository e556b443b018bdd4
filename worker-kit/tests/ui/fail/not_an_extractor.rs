use std::convert::Infallible;
use worker_kit::rpc::RpcWorker;

struct NotAnExtractor;

#[worker_kit::rpc("odd")]
async fn odd(_x: NotAnExtractor) -> Result<(), Infallible> {
    Ok(())
}

fn main() {
    let _w = RpcWorker::new().register(odd);
    // A worker without state: the Runner takes only this form.
    let _: RpcWorker = _w;
}
