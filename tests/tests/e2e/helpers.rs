//! The test helpers themselves: a check that cannot fail proves nothing.

use e2e::{RawPeer, unique};

/// A queue that does not exist is reported as such, never as an empty queue (a "nothing
/// left in the queue" check would otherwise pass when the queue vanished).
#[tokio::test]
#[should_panic(expected = "cannot be inspected")]
async fn a_missing_queue_is_not_reported_empty() {
    let peer = RawPeer::connect().await;
    let n = peer.ready_count(&unique("never-declared")).await;
    // Only reached when the helper turned "missing" into a count.
    let _ = n;
}

/// Taking a message from a queue that does not exist fails instead of reading as "empty".
#[tokio::test]
#[should_panic(expected = "deleted?")]
async fn getting_from_a_missing_queue_is_not_none() {
    let peer = RawPeer::connect().await;
    let got = peer.get(&unique("never-declared")).await;
    let _ = got;
}
