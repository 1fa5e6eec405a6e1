//! The RabbitMQ publisher: connects, starts the reader and publisher threads, and is the
//! handle worker threads publish through (docs/publishing.md).
//!
//! One connection and one channel serve the whole pass. A publisher thread owns the
//! writing half: worker threads hand it batches and block until every document of their
//! batch is settled (acked, nacked, returned as unroutable, or lost with the connection).
//! A reader thread turns what the broker sends into events, in the order it sent them,
//! so a return is always seen before the ack of the same message. Many batches are in
//! flight at once, so the broker is never idle waiting for a confirm.

use crate::broker::amqp::Event;
use crate::broker::connection::{connect_error, open_first, NoBroker};
use crate::broker::publisher_thread::{Input, Job, PublisherThread};
use crate::broker::{Batch, DeliveryError, Publisher};
use crate::config::BrokerSettings;
use rustls::ClientConfig;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, OnceLock};

/// The workers' end of the publisher thread's queue; dropping it tells the thread that
/// no more batches come (the reader thread's end stays open while the connection does).
struct JobSender(Sender<Input>);

impl Drop for JobSender {
    fn drop(&mut self) {
        let _ = self.0.send(Input::NoMoreJobs);
    }
}

/// The RabbitMQ publisher: a handle to the thread that owns the connection.
pub(crate) struct AmqpPublisher {
    jobs: JobSender,
    thread: std::thread::JoinHandle<()>,
    /// Set by the publisher thread when it halts: the alarm the broker named.
    halted: Arc<OnceLock<String>>,
}

impl AmqpPublisher {
    /// Connects, logs in, opens the channel, declares the exchange (or checks that it
    /// exists) and turns publisher confirms on; `tls` is what [`tls_config`] made of the
    /// settings.
    pub(crate) fn connect(
        settings: &BrokerSettings,
        tls: Option<&Arc<ClientConfig>>,
        declare_queue: bool,
    ) -> Result<AmqpPublisher, NoBroker> {
        let (mut session, address) = open_first(settings, tls)?;
        let error = |message: String| NoBroker(vec![connect_error(settings, address, message)]);
        if !settings.exchange.is_empty() {
            let (name, kind) = (&settings.exchange, &settings.exchange_type);
            let declared = session.declare_exchange(name, kind, !settings.declare_exchange);
            declared.map_err(|e| {
                error(if settings.declare_exchange {
                    format!("cannot declare exchange {name:?} ({kind}): {e}")
                } else {
                    format!("exchange {name:?} cannot be used ({e}): create it, or set STATS_COLLECTOR_RABBITMQ_DECLARE_EXCHANGE")
                })
            })?;
        }
        // Config refuses --declare-queue unless the key is fixed and the exchange the
        // default one: the queue the key routes to.
        if let Some(queue) = settings.routing_key.fixed().filter(|_| declare_queue) {
            session
                .declare_queue(queue, false)
                .map_err(|e| error(format!("cannot declare queue: {e}")))?;
        }
        session
            .enable_confirms()
            .map_err(|e| error(format!("cannot enable publisher confirms: {e}")))?;
        let (writer, mut reader) = session.split().map_err(|e| error(e.to_string()))?;
        let (inputs, input_queue) = mpsc::channel::<Input>();
        let events = inputs.clone();
        std::thread::Builder::new()
            .name("amqp-reader".into())
            .spawn(move || loop {
                let batch = reader.next_events();
                let closed = matches!(batch.last(), Some(Event::Closed(_)));
                if events.send(Input::Events(batch)).is_err() || closed {
                    break;
                }
            })
            .map_err(|e| error(format!("cannot start the reader thread: {e}")))?;
        // Unbounded, yet never long: each worker waits for its batch before sending another.
        let jobs = JobSender(inputs);
        let worker = PublisherThread::new(
            writer,
            settings.exchange.clone(),
            settings.confirm_timeout,
            settings.blocked_timeout,
        );
        let halted = Arc::clone(&worker.halted);
        let thread = std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || worker.run(input_queue))
            .map_err(|e| error(format!("cannot start the publisher thread: {e}")))?;
        Ok(AmqpPublisher {
            jobs,
            thread,
            halted,
        })
    }
}

impl Publisher for AmqpPublisher {
    fn publish_batch(&self, batch: Batch) -> Vec<Result<(), DeliveryError>> {
        if batch.is_empty() {
            return Vec::new();
        }
        let size = batch.len();
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Job { batch, reply };
        let lost = || vec![Err(DeliveryError::ConnectionLost("publisher stopped".into())); size];
        if self.jobs.0.send(Input::Job(job)).is_err() {
            return lost();
        }
        answer
            .recv()
            .map_or_else(|_| lost(), |(results, _docs)| results)
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        let AmqpPublisher { jobs, thread, .. } = *self;
        drop(jobs);
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the publisher thread panicked"))
    }

    fn halted(&self) -> Option<String> {
        self.halted.get().cloned()
    }
}
