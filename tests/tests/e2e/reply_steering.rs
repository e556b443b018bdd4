//! Issue 25.6: a reply cannot be steered into somebody else's pending call. Correlation ids
//! are random (128 bits), show in nothing else the client sends, and a message on the reply
//! queue counts only when it is marked as a reply (AMQP `type` `result` or `error`).

use std::time::Duration;

use e2e::{RawPeer, unique};
use futures::StreamExt;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use worker_kit::rpc::{CallOptions, RpcClient};

/// A route the test serves itself, so it sees every request's properties.
async fn serve(peer: &RawPeer, route: &str) -> lapin::Consumer {
    peer.channel
        .queue_declare(
            route.into(),
            QueueDeclareOptions {
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    peer.channel
        .basic_consume(
            route.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
}

async fn next_request(requests: &mut lapin::Consumer) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), requests.next())
        .await
        .expect("a request within 10 s")
        .expect("consumer open")
        .expect("delivery")
}

fn text(v: &Option<ShortString>) -> String {
    v.as_ref().expect("present").as_str().to_owned()
}

/// Replies `data` to `request` with the correlation id `cid` and AMQP `type` `kind`.
async fn reply(peer: &RawPeer, request: &Delivery, cid: &str, kind: Option<&str>, data: &str) {
    let mut props = BasicProperties::default().with_correlation_id(cid.into());
    if let Some(k) = kind {
        props = props.with_type(k.into());
    }
    let body = serde_json::json!({"success": true, "data": data}).to_string();
    let reply_to = request.properties.reply_to().as_ref().unwrap().as_str();
    peer.publish(reply_to, body.as_bytes(), props).await;
}

/// Every run of `width` characters of `s`.
fn windows(s: &str, width: usize) -> Vec<&str> {
    (0..=s.len().saturating_sub(width))
        .map(|i| &s[i..i + width])
        .collect()
}

#[tokio::test]
async fn replies_cannot_be_steered_into_another_call() {
    let route = unique("steer");
    let peer = RawPeer::connect().await;
    let mut requests = serve(&peer, &route).await;
    let client = RpcClient::new(&e2e::broker("steer-caller").await, &e2e::config())
        .await
        .unwrap();
    let options = CallOptions {
        timeout: Some(Duration::from_secs(10)),
        ..CallOptions::default()
    };

    // A first call: the server it reaches sees its correlation id.
    let first = {
        let client = client.clone();
        let route = route.clone();
        tokio::spawn(async move { client.call_route::<_, String>(&route, &(), options).await })
    };
    let seen = next_request(&mut requests).await;
    let first_cid = text(seen.properties.correlation_id());
    reply(&peer, &seen, &first_cid, Some("result"), "first").await;
    assert_eq!(first.await.unwrap().unwrap(), "first");

    // A second call, pending while a server that saw the first forges its reply: with
    // counter-style ids, "the next one" would be guessed right.
    let second = {
        let client = client.clone();
        let route = route.clone();
        tokio::spawn(async move { client.call_route::<_, String>(&route, &(), options).await })
    };
    let pending = next_request(&mut requests).await;
    let second_cid = text(pending.properties.correlation_id());
    let guessed = match first_cid.rsplit_once('.') {
        Some((prefix, n)) => format!("{prefix}.{}", n.parse::<u64>().unwrap() + 1),
        None => first_cid.clone(),
    };
    reply(&peer, &pending, &guessed, Some("result"), "forged").await;
    // The right id on a message not marked as a reply is not a reply either.
    reply(&peer, &pending, &second_cid, None, "untyped").await;
    reply(&peer, &pending, &second_cid, Some("call"), "mistyped").await;
    reply(&peer, &pending, &second_cid, Some("result"), "second").await;
    assert_eq!(second.await.unwrap().unwrap(), "second");
    assert_ne!(guessed, second_cid, "the next correlation id was guessable");
    for cid in [&first_cid, &second_cid] {
        assert_eq!(cid.len(), 32, "{cid}");
        assert!(cid.chars().all(|c| c.is_ascii_hexdigit()), "{cid}");
    }
    let shared: Vec<&str> = windows(&first_cid, 8)
        .into_iter()
        .filter(|w| second_cid.contains(w))
        .collect();
    assert!(
        shared.is_empty(),
        "two correlation ids share {shared:?}: {first_cid} {second_cid}"
    );

    // Nothing of a correlation id shows in the reply queue's consumer tag.
    let reply_queue = text(pending.properties.reply_to());
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_consumers",
            "queue_name",
            "consumer_tag",
            "--formatter",
            "json",
        ])
        .output()
        .expect("rabbitmqctl runs on the broker's host");
    let consumers: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let tag = consumers
        .iter()
        .find(|c| c["queue_name"] == reply_queue.as_str())
        .and_then(|c| c["consumer_tag"].as_str())
        .expect("the client consumes its reply queue")
        .to_owned();
    for cid in [&first_cid, &second_cid] {
        let leaked: Vec<&str> = windows(cid, 8)
            .into_iter()
            .filter(|w| tag.contains(w))
            .collect();
        assert!(
            leaked.is_empty(),
            "consumer tag {tag} shows {leaked:?} of {cid}"
        );
    }
    drop(client);
    peer.delete(&[&route]).await;
}
