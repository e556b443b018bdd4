//! The hostile publisher: a broker user of its own on the services' vhost, publishing with
//! confirms (a publish the broker refuses costs this side its channel or connection, which
//! is reopened and counted), and a reply queue on a second connection that counts the
//! replies each correlation id gets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

/// Replies received, by correlation id.
pub(crate) type Replies = Arc<Mutex<HashMap<String, usize>>>;

pub(crate) struct Attacker {
    url: String,
    publisher: Option<(Connection, Channel)>,
    listener: Connection,
    /// The server-named reply queue (`amq.gen-*`) replies come to.
    pub(crate) reply_queue: String,
    pub(crate) replies: Replies,
}

async fn open(url: &str) -> (Connection, Channel) {
    let conn = Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name("hostile-publisher".into()),
    )
    .await
    .expect("the hostile publisher connects");
    let channel = conn.create_channel().await.expect("a channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    (conn, channel)
}

impl Attacker {
    /// Connects as the user of `url`.
    pub(crate) async fn connect(url: &str) -> Self {
        let listener = Connection::connect(
            url,
            ConnectionProperties::default().with_connection_name("hostile-replies".into()),
        )
        .await
        .expect("the hostile listener connects");
        let ch = listener.create_channel().await.expect("a channel");
        let reply_queue = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("a reply queue")
            .name()
            .as_str()
            .to_owned();
        let mut consumer = ch
            .basic_consume(
                reply_queue.as_str().into(),
                "hostile-replies".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume replies");
        let replies = Replies::default();
        let counted = replies.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let cid = d
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map_or_else(String::new, |c| c.as_str().to_owned());
                *counted.lock().unwrap().entry(cid).or_default() += 1;
            }
        });
        Self {
            url: url.to_owned(),
            publisher: Some(open(url).await),
            listener,
            reply_queue,
            replies,
        }
    }

    /// Publishes; `Err` with the broker's reason when it refused the message (the channel
    /// or connection it closed is reopened for the next one).
    pub(crate) async fn publish(
        &mut self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: BasicProperties,
        confirm: bool,
    ) -> Result<(), String> {
        if self
            .publisher
            .as_ref()
            .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
        {
            self.reopen().await;
        }
        let (_, channel) = self.publisher.as_ref().expect("opened above");
        let sent = match channel
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
        {
            Ok(confirmed) if confirm => confirmed.await.map(drop),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) => Ok(()),
            Err(e) => {
                self.reopen().await;
                Err(e.to_string())
            }
        }
    }

    /// A fresh channel on the publisher's connection when it is still open, else a new
    /// connection (a frame the broker refused closes the whole connection).
    async fn reopen(&mut self) {
        if let Some((conn, ch)) = self.publisher.take()
            && conn.status().connected()
        {
            if ch.status().connected() {
                let _ = ch.close(200, "reopen".into()).await;
            }
            if let Ok(channel) = conn.create_channel().await
                && channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .is_ok()
            {
                self.publisher = Some((conn, channel));
                return;
            }
            let _ = conn.close(200, "reopen".into()).await;
        }
        self.publisher = Some(open(&self.url).await);
    }

    /// Closes both connections.
    pub(crate) async fn close(self) {
        if let Some((conn, _)) = self.publisher {
            let _ = conn.close(200, "done".into()).await;
        }
        let _ = self.listener.close(200, "done".into()).await;
    }
}
