//! The calls a real caller makes, between the hostile messages: each must be answered
//! correctly within its deadline whatever was sent before it.

use std::time::Duration;

use serde_json::json;
use stubs::catalog::GetFreshness;
use stubs::example::items::{CreateItem, GetItem, ListItems};
use stubs::example::{Dictionary, HelloWorld, QueueTest};
use stubs::greeter::Greet;
use worker_kit::queue::QueuePublisher;
use worker_kit::rpc::{CallOptions, RpcClient};

use crate::cases::Ordinary;

/// How long an ordinary call may take: generous, since the point is that it is answered
/// at all, not how fast.
pub(crate) const DEADLINE: Duration = Duration::from_secs(15);

pub(crate) struct Caller {
    pub(crate) rpc: RpcClient,
    pub(crate) tasks: QueuePublisher,
}

fn within() -> CallOptions {
    CallOptions {
        timeout: Some(DEADLINE),
        ..CallOptions::default()
    }
}

impl Caller {
    /// Makes the call `op` (case `index`); `Err` says what went wrong.
    pub(crate) async fn call(&self, op: Ordinary, index: usize) -> Result<(), String> {
        let c = &self.rpc;
        match op {
            Ordinary::Hello => {
                let r = c
                    .call_with(&HelloWorld(Some("h".into())), within())
                    .await
                    .map_err(|e| e.to_string())?;
                check(r == "Hello world!", &r)
            }
            Ordinary::Greet => {
                let r = c
                    .call_with(&Greet { name: "h".into() }, within())
                    .await
                    .map_err(|e| e.to_string())?;
                check(r.message == "Hello world! (to h)", &r.message)
            }
            Ordinary::Dictionary => {
                let mut m = serde_json::Map::new();
                m.insert("foo".into(), json!(index));
                let r = c
                    .call_with(&Dictionary(m), within())
                    .await
                    .map_err(|e| e.to_string())?;
                check(r.get("bar") == Some(&json!("baz")), &format!("{r:?}"))
            }
            Ordinary::CreateItem => {
                let item = c
                    .call_with(
                        &CreateItem {
                            name: format!("ordinary {index} {}", uuid::Uuid::new_v4().simple()),
                            price_cents: 1,
                            tags: vec!["ordinary".into()],
                        },
                        within(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let again = c
                    .call_with(&GetItem { id: item.id }, within())
                    .await
                    .map_err(|e| e.to_string())?;
                check(again == item, "the item read back differs")
            }
            Ordinary::ListItems => c
                .call_with(
                    &ListItems {
                        after: None,
                        limit: Some(5),
                    },
                    within(),
                )
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Ordinary::Freshness => c
                .call_with(&GetFreshness {}, within())
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Ordinary::Task => self
                .tasks
                .publish_task(&QueueTest(json!(format!("ordinary {index}"))))
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

fn check(ok: bool, got: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("wrong answer: {got}"))
    }
}
