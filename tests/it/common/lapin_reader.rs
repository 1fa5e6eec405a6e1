//! The tests' own reader and writer of queues: lapin, a maintained AMQP client independent
//! of the collector's (declare, publish, drain, count).

use super::*;
use std::thread;
use std::time::{Duration, Instant};

// The tests' own reader of queues: lapin, a maintained AMQP client independent of the
// collector's, driven synchronously by `futures_lite::future::block_on` (lapin runs its I/O on
// async-global-executor / async-io threads, so no runtime has to be entered here).

/// Bound on one attempt to open a connection: a broker that accepts TCP but never answers
/// fails the test instead of hanging it.
pub(super) const AMQP_CONNECT_ATTEMPT: Duration = Duration::from_secs(10);

/// Runs `future` to completion on this thread.
pub(super) fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::block_on(future)
}

/// `future`, or `None` once `limit` has passed.
pub(super) fn within<T>(
    limit: Duration,
    future: impl std::future::Future<Output = T>,
) -> Option<T> {
    block_on(futures_lite::future::or(
        async { Some(future.await) },
        async {
            async_io::Timer::after(limit).await;
            None
        },
    ))
}

/// An open AMQP connection with one channel, closed cleanly when dropped (so the broker
/// has processed everything sent on it before the helper returns).
pub struct AmqpConnection {
    connection: lapin::Connection,
    channel: lapin::Channel,
}

impl AmqpConnection {
    /// The channel, for what the helpers below do not cover.
    pub fn channel(&self) -> &lapin::Channel {
        &self.channel
    }

    /// Runs one of the channel's futures to completion.
    pub fn wait<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        block_on(future)
    }

    /// Closes the connection now, reporting a failure (dropping closes too, quietly).
    pub fn close(self) -> Result<(), lapin::Error> {
        block_on(self.connection.close(200, "done".into()))
    }
}

impl Drop for AmqpConnection {
    fn drop(&mut self) {
        // No panic in drop; a connection the broker already closed has nothing to close.
        let _ = within(
            Duration::from_secs(5),
            self.connection.close(200, "done".into()),
        );
    }
}

/// Opens an AMQP connection (guest/guest, vhost `/`) and a channel on it, retrying for a
/// few seconds.
pub fn amqp_connect(addr: &(impl AmqpAddr + ?Sized)) -> AmqpConnection {
    let url = addr.amqp_url();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let opened = within(AMQP_CONNECT_ATTEMPT, async {
            let connection =
                lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            Ok::<_, lapin::Error>(AmqpConnection {
                connection,
                channel,
            })
        })
        .unwrap_or_else(|| {
            panic!("AMQP connect to {url}: no answer within {AMQP_CONNECT_ATTEMPT:?}")
        });
        match opened {
            Ok(c) => return c,
            Err(e) if Instant::now() >= deadline => panic!(
                "AMQP connect to {url}: {e} (is the broker up? run: eval \"$(scripts/services ensure)\")"
            ),
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Declares a durable, non-exclusive, non-auto-delete queue. The collector publishes to the
/// default exchange, which routes a message to the queue named like its routing key.
pub fn declare_queue(addr: &(impl AmqpAddr + ?Sized), name: &str) {
    let conn = amqp_connect(addr);
    let options = lapin::options::QueueDeclareOptions {
        durable: true,
        exclusive: false,
        auto_delete: false,
        ..Default::default()
    };
    conn.wait(
        conn.channel
            .queue_declare(name.into(), options, Default::default()),
    )
    .unwrap_or_else(|e| panic!("declare queue {name}: {e}"));
}

/// Deletes the queue (no error if it does not exist).
pub fn delete_queue(addr: &(impl AmqpAddr + ?Sized), name: &str) {
    let conn = amqp_connect(addr);
    conn.wait(conn.channel.queue_delete(name.into(), Default::default()))
        .unwrap_or_else(|e| panic!("delete queue {name}: {e}"));
}

/// A passive declare: the queue's message count, or the broker's refusal (404 for a
/// missing queue, which also closes the channel).
pub(super) fn passive_declare(conn: &AmqpConnection, name: &str) -> Result<u32, lapin::Error> {
    let options = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let queue = conn.wait(
        conn.channel
            .queue_declare(name.into(), options, Default::default()),
    )?;
    Ok(queue.message_count())
}

/// Takes every message in the queue and deletes it once empty (`if-empty`, retried on a
/// fresh channel when a message came in between), so no message a publisher had
/// delivered is lost with the queue. Returns the messages taken.
pub fn drain_and_delete_queue(addr: &(impl AmqpAddr + ?Sized), name: &str) -> Vec<Message> {
    let mut out = Vec::new();
    for _ in 0..100 {
        // A refused delete closes the channel: every try has a connection of its own.
        let conn = amqp_connect(addr);
        get_all(&conn, name, &mut out);
        let options = lapin::options::QueueDeleteOptions {
            if_empty: true,
            ..Default::default()
        };
        if conn
            .wait(conn.channel.queue_delete(name.into(), options))
            .is_ok()
        {
            return out;
        }
    }
    panic!("queue {name} never found empty");
}

/// Number of messages in the queue, or None if the queue does not exist.
pub fn queue_len(addr: &(impl AmqpAddr + ?Sized), name: &str) -> Option<u32> {
    passive_declare(&amqp_connect(addr), name).ok()
}

/// The properties a test publishes a message with (what the tests set of AMQP's basic
/// properties); the builder methods are those the tests used with the former client.
#[derive(Clone, Debug, Default)]
pub struct AmqpProperties {
    message_id: Option<String>,
    content_type: Option<String>,
    delivery_mode: Option<u8>,
}

impl AmqpProperties {
    pub fn with_message_id(mut self, id: String) -> Self {
        self.message_id = Some(id);
        self
    }

    pub fn with_content_type(mut self, content_type: String) -> Self {
        self.content_type = Some(content_type);
        self
    }

    /// 2 is persistent, 1 transient.
    pub fn with_delivery_mode(mut self, mode: u8) -> Self {
        self.delivery_mode = Some(mode);
        self
    }

    fn to_lapin(&self) -> lapin::BasicProperties {
        let mut properties = lapin::BasicProperties::default();
        if let Some(id) = &self.message_id {
            properties = properties.with_message_id(id.as_str().into());
        }
        if let Some(content_type) = &self.content_type {
            properties = properties.with_content_type(content_type.as_str().into());
        }
        if let Some(mode) = self.delivery_mode {
            properties = properties.with_delivery_mode(mode);
        }
        properties
    }
}

/// Publishes `body` to the default exchange with routing key `routing_key`.
pub fn publish(
    addr: &(impl AmqpAddr + ?Sized),
    routing_key: &str,
    body: &[u8],
    properties: AmqpProperties,
) {
    let conn = amqp_connect(addr);
    conn.wait(conn.channel.basic_publish(
        "".into(),
        routing_key.into(),
        Default::default(),
        body,
        properties.to_lapin(),
    ))
    .unwrap_or_else(|e| panic!("publish to {routing_key}: {e}"));
    // A clean close makes the broker process the publish before the connection goes away.
    conn.close().expect("close AMQP connection");
}

/// One message taken from a queue.
#[derive(Clone, Debug)]
pub struct Message {
    /// The body parsed as JSON (the helpers panic on a non-JSON body).
    pub body: serde_json::Value,
    pub raw: Vec<u8>,
    pub routing_key: String,
    pub message_id: Option<String>,
    pub content_type: Option<String>,
    pub delivery_mode: Option<u8>,
}

pub(super) fn get_all(conn: &AmqpConnection, name: &str, out: &mut Vec<Message>) {
    if let Err(e) = passive_declare(conn, name) {
        panic!("queue {name} does not exist: {e}");
    }
    let no_ack = lapin::options::BasicGetOptions { no_ack: true };
    while let Some(got) = conn
        .wait(conn.channel.basic_get(name.into(), no_ack))
        .unwrap_or_else(|e| panic!("get from {name}: {e}"))
    {
        let d = got.delivery;
        let body = serde_json::from_slice(&d.data).unwrap_or_else(|e| {
            panic!(
                "message in {name} is not JSON ({e}): {}",
                String::from_utf8_lossy(&d.data)
            )
        });
        let text = |s: &Option<lapin::types::ShortString>| s.as_ref().map(|s| s.to_string());
        out.push(Message {
            body,
            raw: d.data.clone(),
            routing_key: d.routing_key.to_string(),
            message_id: text(d.properties.message_id()),
            content_type: text(d.properties.content_type()),
            delivery_mode: *d.properties.delivery_mode(),
        });
    }
}

/// Takes (basic.get, no-ack) every message currently in the queue. Panics if the queue is
/// missing.
pub fn drain_queue(addr: &(impl AmqpAddr + ?Sized), name: &str) -> Vec<Message> {
    let conn = amqp_connect(addr);
    let mut out = Vec::new();
    get_all(&conn, name, &mut out);
    out
}

/// Drains the queue until at least `n` messages were taken or `timeout` passed; returns all
/// messages taken (possibly fewer than `n`, possibly more: assert on the result).
pub fn wait_for_messages(
    addr: &(impl AmqpAddr + ?Sized),
    name: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Message> {
    let deadline = Instant::now() + timeout;
    let conn = amqp_connect(addr);
    let mut out = Vec::new();
    loop {
        get_all(&conn, name, &mut out);
        if out.len() >= n || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    out
}
