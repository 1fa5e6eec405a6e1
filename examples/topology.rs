//! Sets up an exchange and the queues bound to it, for `scripts/demo` and `scripts/bench`
//! (the collector never binds queues: they are the consumers'). Through lapin, the AMQP
//! client the tests read queues with.
//!
//! ```text
//! cargo run --example topology -- --host 127.0.0.1:5673 --exchange asgard-stats \
//!     --type x-consistent-hash --binding-key 1 --queue q.0 --queue q.1 [--fresh]
//! ```
//!
//! declares the exchange (durable, of `--type`) and each queue (durable), and binds each
//! queue to the exchange with `--binding-key` (for a consistent-hash exchange, the
//! queue's weight: "1" gives every queue an equal share; for a topic exchange, a pattern
//! such as `asgard.stats.#`). `--fresh` first deletes the queues and the exchange, so a
//! run starts from empty queues. Prints one line per queue bound.

#![allow(clippy::expect_used, reason = "a tool of the scripts: it fails loudly")]

use clap::Parser;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::ExchangeKind;

/// Declare an exchange and bind durable queues to it.
#[derive(Parser)]
struct Args {
    /// The broker, HOST:PORT (user guest/guest, vhost /).
    #[arg(long)]
    host: String,
    #[arg(long)]
    exchange: String,
    /// direct, fanout, topic, headers, x-consistent-hash, ...
    #[arg(long = "type", default_value = "topic")]
    kind: String,
    /// The key each queue is bound with.
    #[arg(long)]
    binding_key: String,
    /// A queue to declare and bind (repeatable).
    #[arg(long = "queue", required = true)]
    queues: Vec<String>,
    /// Delete the queues and the exchange first.
    #[arg(long)]
    fresh: bool,
}

fn main() -> Result<(), lapin::Error> {
    let args = Args::parse();
    futures_lite::future::block_on(async {
        let url = format!("amqp://guest:guest@{}/%2f", args.host);
        let connection =
            lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        if args.fresh {
            for queue in &args.queues {
                let options = QueueDeleteOptions::default();
                channel.queue_delete(queue.as_str().into(), options).await?;
            }
            let options = ExchangeDeleteOptions::default();
            channel
                .exchange_delete(args.exchange.as_str().into(), options)
                .await?;
        }
        let kind = match args.kind.as_str() {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            other => ExchangeKind::Custom(other.into()),
        };
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                args.exchange.as_str().into(),
                kind,
                durable,
                Default::default(),
            )
            .await?;
        for queue in &args.queues {
            let durable = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            channel
                .queue_declare(queue.as_str().into(), durable, Default::default())
                .await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    args.exchange.as_str().into(),
                    args.binding_key.as_str().into(),
                    QueueBindOptions::default(),
                    Default::default(),
                )
                .await?;
            println!(
                "topology: queue {queue} bound to exchange {} ({}) with key {}",
                args.exchange, args.kind, args.binding_key
            );
        }
        connection.close(200, "done".into()).await
    })
}
