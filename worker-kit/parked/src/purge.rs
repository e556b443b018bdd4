//! `parked purge ROUTE [--yes]`: remove the parked messages, saying which.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Result, bail};
use lapin::options::BasicAckOptions;

use crate::browse;
use crate::list::now_seconds;
use crate::parked_message::Summary;
use crate::session::Session;

pub(crate) async fn run(session: &Session, yes: bool) -> Result<()> {
    let parked = session.depth().await?;
    if parked == 0 {
        println!("nothing parked in {}", session.queue);
        return Ok(());
    }
    if !yes {
        confirm(session, parked)?;
    }
    let channel = session.channel().await?;
    let mut removed = 0u32;
    let now = now_seconds();
    // Only what was parked when asked: a message parked meanwhile was not agreed to.
    while removed < parked {
        let delivery = match browse::next(session, &channel).await {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e) => {
                browse::hand_back(channel).await;
                return Err(e);
            }
        };
        let s = Summary::of(&delivery, now);
        // Said first, then removed: a purge cut short never removes a message unsaid.
        println!(
            "removed {} ({}: {})",
            s.id,
            s.error_type.as_deref().unwrap_or("-"),
            s.error_message.as_deref().unwrap_or("")
        );
        if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
            browse::hand_back(channel).await;
            return Err(session.explain(&e, "removing a parked message"));
        }
        removed += 1;
    }
    browse::hand_back(channel).await;
    println!("removed {removed} parked messages from {}", session.queue);
    Ok(())
}

/// Asks on the terminal; refuses without one (a script must say --yes).
fn confirm(session: &Session, parked: u32) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to purge the {parked} messages parked in {} without asking, and stdin is not a terminal: pass --yes to purge without asking (see them first with `parked list {}`)",
            session.queue,
            session.route
        );
    }
    eprint!(
        "Remove the {parked} messages parked in {}? They cannot be brought back. [y/N] ",
        session.queue
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        bail!("purge cancelled; nothing was removed");
    }
    Ok(())
}
