//! The broker nodes a process may connect to: `AMQP_URL` as one URL or a comma-separated
//! list of them (one per node of a RabbitMQ cluster).
//!
//! The list is shuffled once per process, so the replicas of a service spread their
//! connections over the cluster instead of all landing on the first node. Every connect
//! attempt takes the next node in that order, so a reconnect after losing a node tries the
//! others first and comes back to the lost one last.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::seq::SliceRandom;

use super::tls::AmqpTls;
use crate::config::AmqpUrl;
pub(crate) use crate::config::amqp_url::Endpoint;
#[cfg(test)]
use crate::config::amqp_url::ListError;
#[cfg(test)]
use crate::config::amqp_url::parse;

/// The nodes in this process's order, and which one the next attempt takes.
#[derive(Debug)]
pub(crate) struct Endpoints {
    order: Vec<Endpoint>,
    next: AtomicUsize,
}

impl Endpoints {
    /// `list` parsed and shuffled.
    #[cfg(test)]
    pub(crate) fn new(list: &str) -> Result<Self, ListError> {
        let mut order = parse(list)?;
        order.shuffle(&mut rand::rng());
        Ok(Self::in_order(order))
    }

    /// `list`'s nodes shuffled, its `amqps://` nodes connecting with `tls`'s files (read
    /// here, once).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Config`] for a TLS file that cannot be used.
    pub(crate) fn with_tls(list: &AmqpUrl, tls: &AmqpTls) -> Result<Self, crate::Error> {
        let mut order = list.nodes().to_vec();
        if order.iter().any(|e| e.tls) {
            let config = Arc::new(tls.load()?);
            for e in &mut order {
                e.tls_config = config.clone();
            }
        }
        order.shuffle(&mut rand::rng());
        Ok(Self::in_order(order))
    }

    /// `order` as given (tests).
    pub(crate) fn in_order(order: Vec<Endpoint>) -> Self {
        assert!(!order.is_empty(), "at least one endpoint");
        Self {
            order,
            next: AtomicUsize::new(0),
        }
    }

    /// The endpoint for the next connect attempt; each call moves on by one.
    pub(crate) fn next(&self) -> &Endpoint {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.order[i % self.order.len()]
    }

    /// The user every node is logged in to as.
    pub(crate) fn user(&self) -> &str {
        &self.order[0].user
    }

    /// How many nodes there are: the attempts of one round over all of them.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Every node, passwords hidden, comma-separated.
    pub(crate) fn shown(&self) -> String {
        let mut shown: Vec<&str> = self.order.iter().map(|e| e.shown.as_str()).collect();
        // The process's shuffled order is no business of a message reader.
        shown.sort_unstable();
        shown.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str =
        "amqp://u:s3cret@n1:5672/%2f, amqp://u:s3cret@n2:5672/%2f,amqp://u:s3cret@n3:5672/%2f";

    #[test]
    fn amqps_is_marked_for_tls_and_reads_the_ca() {
        let e = parse("amqps://u:pw9@127.0.0.1:5671/%2f,amqp://u:pw9@127.0.0.1:5672/%2f").unwrap();
        assert!(e[0].tls && !e[1].tls);
        let missing = AmqpTls::new(Some("/nonexistent/ca.pem".into()), None, None);
        let err = Endpoints::with_tls(
            &"amqps://u:pw9@127.0.0.1:5671/%2f".parse().unwrap(),
            &missing,
        )
        .unwrap_err();
        assert!(err.to_string().contains("AMQP_TLS_CA_FILE"), "{err}");
        // A plaintext list never reads the TLS files.
        assert!(
            Endpoints::with_tls(
                &"amqp://u:pw9@127.0.0.1:5672/%2f".parse().unwrap(),
                &missing
            )
            .is_ok()
        );
    }

    #[test]
    fn one_url_is_a_list_of_one() {
        let e = parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].shown, "amqp://guest:***@127.0.0.1:5672/%2f");
    }

    #[test]
    fn host_and_port_as_the_url_says_or_the_schemes_port() {
        let e = parse(
            "amqp://u:pw@10.1.2.3:5673/%2f,amqp://u:pw@rabbit/%2f,amqps://u:pw@tls.example/%2f",
        )
        .unwrap();
        let at: Vec<(&str, u16)> = e.iter().map(|e| (e.host.as_str(), e.port)).collect();
        assert_eq!(
            at,
            [("10.1.2.3", 5673), ("rabbit", 5672), ("tls.example", 5671)]
        );
    }

    #[test]
    fn splits_and_trims() {
        let e = parse(THREE).unwrap();
        let urls: Vec<&str> = e.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "amqp://u:s3cret@n1:5672/%2f",
                "amqp://u:s3cret@n2:5672/%2f",
                "amqp://u:s3cret@n3:5672/%2f"
            ]
        );
        assert!(e.iter().all(|e| !e.shown.contains("s3cret")));
    }

    #[test]
    fn names_the_bad_entry_without_its_password() {
        let err = parse("amqp://u:pw1@n1/%2f,http://u:pw2@n2/").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("entry 2 (http://u:***@n2/)"), "{text}");
        assert!(!text.contains("pw2") && !text.contains("pw1"), "{text}");
        assert!(matches!(
            parse("amqp://n1/%2f,,amqp://n2/%2f"),
            Err(ListError::Malformed { index: 2, .. })
        ));
        assert_eq!(parse(" , ").unwrap_err(), ListError::Empty);
    }

    #[test]
    fn a_frame_max_below_the_brokers_default_is_refused() {
        let err = parse("amqp://u:pw@n1/%2f?frame_max=8192").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("entry 1 (amqp://u:***@n1/"), "{text}");
        assert!(text.contains("frame_max=8192 is below 131072"), "{text}");
        assert!(text.contains("remove frame_max"), "{text}");
        for ok in [
            "",
            "?frame_max=131072",
            "?frame_max=1048576",
            "?frame_max=0",
        ] {
            assert!(parse(&format!("amqp://n1/%2f{ok}")).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_user_is_the_urls_decoded_or_guest() {
        let e = Endpoints::new(THREE).unwrap();
        assert_eq!(e.user(), "u");
        let e = Endpoints::new("amqp://billing%2Deu:pw@n1/%2f").unwrap();
        assert_eq!(e.user(), "billing-eu");
        let e = Endpoints::new("amqp://n1/%2f").unwrap();
        assert_eq!(e.user(), "guest");
        assert_eq!(
            parse("amqp://a:pw@n1/%2f,amqp://b:pw@n2/%2f").unwrap_err(),
            ListError::MixedUsers
        );
    }

    #[test]
    fn next_rotates_through_every_node() {
        let e = Endpoints::in_order(parse(THREE).unwrap());
        let hosts: Vec<String> = (0..4)
            .map(|_| e.next().url.split('@').nth(1).unwrap()[..2].to_owned())
            .collect();
        assert_eq!(hosts, ["n1", "n2", "n3", "n1"]);
    }

    #[test]
    fn shuffle_keeps_every_node_and_varies_the_order() {
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..200 {
            let e = Endpoints::new(THREE).unwrap();
            assert_eq!(e.len(), 3);
            let mut all: Vec<String> = (0..3).map(|_| e.next().url.clone()).collect();
            firsts.insert(all[0].clone());
            all.sort();
            all.dedup();
            assert_eq!(all.len(), 3, "each node once per round");
        }
        assert_eq!(firsts.len(), 3, "every node comes first for some process");
    }

    #[test]
    fn shown_hides_passwords() {
        let e = Endpoints::new(THREE).unwrap();
        assert_eq!(
            e.shown(),
            "amqp://u:***@n1:5672/%2f,amqp://u:***@n2:5672/%2f,amqp://u:***@n3:5672/%2f"
        );
    }
}
