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

#[worker_kit::rpc("x", callers = ["a"])]
async fn unknown_list() -> Result<(), Infallible> {
    Ok(())
}

#[worker_kit::rpc("y", allow = ["ok", ""])]
async fn empty_caller() -> Result<(), Infallible> {
    Ok(())
}

fn main() {}
