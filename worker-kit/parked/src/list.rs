//! `parked list ROUTE`: the parked messages, oldest first, left where they are.

use anyhow::Result;
use serde_json::json;

use crate::browse;
use crate::parked_message::{Summary, age};
use crate::session::Session;

/// A quorum parking queue's `x-delivery-count` at which `list` warns: RabbitMQ 4.0 to 4.2
/// drop a message at 20 (see [`browse`]).
const DELIVERY_COUNT_WARNING: u64 = 10;

pub(crate) async fn run(session: &Session, limit: u32, json: bool) -> Result<()> {
    let total = session.depth().await?;
    let channel = session.channel().await?;
    let mut listed = Vec::new();
    let now = now_seconds();
    while listed.len() < limit as usize {
        match browse::next(session, &channel).await {
            Ok(Some(delivery)) => listed.push(Summary::of(&delivery, now)),
            Ok(None) => break,
            Err(e) => {
                browse::hand_back(channel).await;
                return Err(e);
            }
        }
    }
    browse::hand_back(channel).await;
    if let Some(worn) = listed
        .iter()
        .filter_map(|s| s.delivery_count)
        .max()
        .filter(|n| *n >= DELIVERY_COUNT_WARNING)
    {
        eprintln!(
            "warning: a message of {} was handed out {worn} times (x-delivery-count); on RabbitMQ 4.0 to 4.2 a quorum queue drops it at its delivery limit (20 by default): set a policy with delivery-limit -1 on the parking queues",
            session.queue
        );
    }
    if json {
        let doc = json!({
            "route": session.route,
            "queue": session.queue,
            "total": total,
            "listed": listed.len(),
            "messages": listed,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    print_table(session, total, &listed);
    Ok(())
}

fn print_table(session: &Session, total: u32, listed: &[Summary]) {
    println!(
        "{}: {total} parked in {}{}",
        session.route,
        session.queue,
        if (listed.len() as u64) < u64::from(total) {
            format!(" (the first {} listed; --limit lists more)", listed.len())
        } else {
            String::new()
        }
    );
    if listed.is_empty() {
        return;
    }
    println!(
        "{:<38} {:<18} {:>7} {:<16} {:>7}  MESSAGE",
        "ID", "ERROR TYPE", "RETRIES", "SENDER", "AGE"
    );
    for s in listed {
        println!(
            "{:<38} {:<18} {:>7} {:<16} {:>7}  {}",
            s.id,
            s.error_type.as_deref().unwrap_or("-"),
            s.retry_count.map_or("-".into(), |n| n.to_string()),
            s.original_sender.as_deref().unwrap_or("(anonymous)"),
            s.age_seconds.map_or("-".into(), age),
            one_line(s.error_message.as_deref().unwrap_or("")),
        );
    }
}

/// `text` on one line (an error message may hold newlines, and came from a caller).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub(crate) fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
