#[worker_kit::rpc("nothing")]
async fn nothing() {}

fn main() {}
