//! `parked show ROUTE ID`: one parked message, whole.

use anyhow::{Result, bail};
use lapin::message::Delivery;
use serde_json::{Map, Value, json};

use crate::parked_message::id_of;
use crate::session::Session;
use crate::{body, browse, headers};

pub(crate) async fn run(session: &Session, id: &str, scan: u32) -> Result<()> {
    let channel = session.channel().await?;
    let found = find(session, &channel, id, scan).await;
    browse::hand_back(channel).await;
    let Some((delivery, alike)) = found? else {
        bail!(
            "no message `{id}` among the first {scan} parked in {} (ids as `parked list {}` shows them; --scan looks further)",
            session.queue,
            session.route
        );
    };
    print(&delivery);
    if alike > 0 {
        println!("({alike} more parked messages have this id)");
    }
    Ok(())
}

/// The first message named `id` among the first `scan`, and how many more share the id.
async fn find(
    session: &Session,
    channel: &lapin::Channel,
    id: &str,
    scan: u32,
) -> Result<Option<(Delivery, usize)>> {
    let mut found = None;
    let mut alike = 0;
    for _ in 0..scan {
        let Some(delivery) = browse::next(session, channel).await? else {
            break;
        };
        if id_of(&delivery.properties, &delivery.data) == id {
            if found.is_none() {
                found = Some(delivery);
            } else {
                alike += 1;
            }
        }
    }
    Ok(found.map(|d| (d, alike)))
}

fn print(delivery: &Delivery) {
    let p = &delivery.properties;
    let mut props = Map::new();
    let mut put = |name: &str, v: Option<Value>| {
        if let Some(v) = v {
            props.insert(name.to_owned(), v);
        }
    };
    let s = |v: &Option<lapin::types::ShortString>| v.as_ref().map(|s| json!(s.as_str()));
    put("message_id", s(p.message_id()));
    put("correlation_id", s(p.correlation_id()));
    put("user_id", s(p.user_id()));
    put("app_id", s(p.app_id()));
    put("type", s(p.kind()));
    put("content_type", s(p.content_type()));
    put("content_encoding", s(p.content_encoding()));
    put("reply_to", s(p.reply_to()));
    put("expiration", s(p.expiration()));
    put("delivery_mode", p.delivery_mode().map(|v| json!(v)));
    put("priority", p.priority().map(|v| json!(v)));
    put(
        "timestamp",
        p.timestamp().map(|t| {
            let at = i64::try_from(t)
                .ok()
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            json!(at.unwrap_or_else(|| t.to_string()))
        }),
    );
    let shown = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    println!("id: {}", id_of(p, &delivery.data));
    println!("properties: {}", shown(&Value::Object(props)));
    let table = p.headers().clone().unwrap_or_default();
    println!("headers: {}", shown(&headers::table_json(&table)));
    println!("body ({} bytes on the wire):", delivery.data.len());
    let encoding = p.content_encoding().as_ref().map(|e| e.as_str().to_owned());
    println!("{}", body::shown(encoding.as_deref(), &delivery.data));
}
