use std::convert::Infallible;

#[worker_kit::rpc("borrow")]
async fn borrow(name: &str) -> Result<String, Infallible> {
    Ok(name.to_owned())
}

fn main() {}
