use std::convert::Infallible;

#[worker_kit::rpc]
async fn no_name() -> Result<(), Infallible> {
    Ok(())
}

#[worker_kit::rpc("")]
async fn empty_name() -> Result<(), Infallible> {
    Ok(())
}

#[worker_kit::rpc(route = "x")]
async fn unknown_key() -> Result<(), Infallible> {
    Ok(())
}

fn main() {}
