use std::convert::Infallible;

#[worker_kit::rpc("sync")]
fn sync() -> Result<(), Infallible> {
    Ok(())
}

fn main() {}
