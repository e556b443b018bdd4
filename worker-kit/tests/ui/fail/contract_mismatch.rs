use serde::{Deserialize, Serialize};
use worker_kit::rpc::RpcWorker;
use worker_kit::{Contract, ErrorReply, Payload};

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct GetItem {
    id: i64,
}

impl Contract for GetItem {
    const ROUTE: &'static str = "items.get";
    type Response = String;
}

// Reads the wrong payload type for the contract.
#[worker_kit::rpc(contract = GetItem)]
async fn wrong_payload(Payload(id): Payload<i64>) -> Result<String, ErrorReply> {
    Ok(id.to_string())
}

// Returns the wrong response type for the contract.
#[worker_kit::rpc(contract = GetItem)]
async fn wrong_response(Payload(req): Payload<GetItem>) -> Result<i64, ErrorReply> {
    Ok(req.id)
}

fn main() {
    let _w = RpcWorker::new().register(wrong_payload).register(wrong_response);
    // A worker without state: the Runner takes only this form.
    let _: RpcWorker = _w;
}
