//! Delivery of documents: the narrow [`Publisher`] interface the pass depends on, and its
//! RabbitMQ implementation over amiquip (design section 7).
//!
//! One connection and one channel serve the whole pass. amiquip's `Channel` is not
//! `Sync`, so it lives in one publisher thread; worker threads hand it batches and block
//! until every document of their batch is settled (acked, nacked, returned as unroutable,
//! or lost with the connection). Many batches are in flight at once, so the broker is
//! never idle waiting for a confirm.

use crate::config::BrokerSettings;
use amiquip::{
    AmqpProperties, Auth, Channel, Confirm, Connection, ConnectionOptions, ConnectionTuning,
    Publish, QueueDeclareOptions, Return,
};
use crossbeam_channel::{bounded, select, Receiver, Sender};
use std::collections::{BTreeMap, HashMap};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A document ready to send: its AMQP message id and its JSON body.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) message_id: String,
    pub(crate) body: Vec<u8>,
}

/// Why a document was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DeliveryError {
    #[error("unroutable: no queue is bound to routing key {0:?} ({1})")]
    Unroutable(String, String),
    #[error("rejected by the broker (nack)")]
    Nacked,
    #[error("not confirmed within {0:?}")]
    Unconfirmed(Duration),
    #[error("broker connection lost: {0}")]
    ConnectionLost(String),
}

impl DeliveryError {
    /// A short stable name for counting failures by reason.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            DeliveryError::Unroutable(..) => "unroutable",
            DeliveryError::Nacked => "nacked",
            DeliveryError::Unconfirmed(_) => "unconfirmed",
            DeliveryError::ConnectionLost(_) => "connection-lost",
        }
    }
}

/// Where documents go. The pass knows nothing else of the broker.
pub(crate) trait Publisher: Send + Sync {
    /// Sends a batch and waits until each document is settled; one result per document,
    /// in order. Ok means the broker took responsibility for it.
    fn publish_batch(&self, batch: &[Outgoing]) -> Vec<Result<(), DeliveryError>>;

    /// Finishes the pass: flushes what the implementation buffered and closes it.
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

/// Why the broker could not be reached at the start of a pass.
#[derive(Debug, thiserror::Error)]
#[error("broker {host}:{port} (vhost {vhost:?}): {message}")]
pub(crate) struct ConnectError {
    host: String,
    port: u16,
    vhost: String,
    message: String,
}

/// A batch handed to the publisher thread, with where to send its results.
struct Job {
    batch: Vec<Outgoing>,
    reply: Sender<Vec<Result<(), DeliveryError>>>,
}

/// The RabbitMQ publisher: a handle to the thread that owns the connection.
pub(crate) struct AmqpPublisher {
    jobs: Sender<Job>,
    thread: std::thread::JoinHandle<()>,
}

impl AmqpPublisher {
    /// Connects, opens the channel, turns on publisher confirms and return listening.
    pub(crate) fn connect(
        settings: &BrokerSettings,
        declare_queue: bool,
    ) -> Result<AmqpPublisher, ConnectError> {
        let error = |message: String| ConnectError {
            host: settings.host.clone(),
            port: settings.port,
            vhost: settings.vhost.clone(),
            message,
        };
        let mut connection = open_connection(settings).map_err(error)?;
        let channel = connection
            .open_channel(None)
            .map_err(|e| error(format!("cannot open a channel: {e}")))?;
        // Listen before enabling, or the first confirms could be missed.
        let confirms = channel
            .listen_for_publisher_confirms()
            .map_err(|e| error(format!("cannot listen for confirms: {e}")))?;
        let returns = channel
            .listen_for_returns()
            .map_err(|e| error(format!("cannot listen for returns: {e}")))?;
        channel
            .enable_publisher_confirms()
            .map_err(|e| error(format!("cannot enable publisher confirms: {e}")))?;
        if declare_queue {
            let options = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            channel
                .queue_declare(settings.routing_key.as_str(), options)
                .map_err(|e| error(format!("cannot declare queue: {e}")))?;
        }
        let (jobs, job_queue) = bounded::<Job>(256);
        let worker = PublisherThread {
            connection: Some(connection),
            channel: Some(channel),
            routing_key: settings.routing_key.clone(),
            confirm_timeout: settings.confirm_timeout,
            next_tag: 1,
            pending: BTreeMap::new(),
            batches: HashMap::new(),
            next_batch: 0,
            returned: HashMap::new(),
            broken: None,
        };
        let thread = std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || worker.run(job_queue, confirms, returns))
            .map_err(|e| error(format!("cannot start the publisher thread: {e}")))?;
        Ok(AmqpPublisher { jobs, thread })
    }
}

impl Publisher for AmqpPublisher {
    fn publish_batch(&self, batch: &[Outgoing]) -> Vec<Result<(), DeliveryError>> {
        if batch.is_empty() {
            return Vec::new();
        }
        let (reply, answer) = bounded(1);
        let job = Job {
            batch: batch.to_vec(),
            reply,
        };
        let lost =
            || vec![Err(DeliveryError::ConnectionLost("publisher stopped".into())); batch.len()];
        if self.jobs.send(job).is_err() {
            return lost();
        }
        answer.recv().unwrap_or_else(|_| lost())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        let AmqpPublisher { jobs, thread } = *self;
        drop(jobs);
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the publisher thread panicked"))
    }
}

/// Connects TCP with the connect timeout ourselves: amiquip's URL helper would put the
/// password into its error messages, and has no connect timeout of its own.
fn open_connection(settings: &BrokerSettings) -> Result<Connection, String> {
    let address = (settings.host.as_str(), settings.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| "host resolves to no address".to_string())?;
    let stream = TcpStream::connect_timeout(&address, settings.connect_timeout)
        .map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
    let stream = mio::net::TcpStream::from_stream(stream)
        .map_err(|e| format!("cannot register the socket: {e}"))?;
    let options = ConnectionOptions::default()
        .auth(Auth::Plain {
            username: settings.user.clone(),
            password: settings.password.expose().to_string(),
        })
        .virtual_host(settings.vhost.clone())
        .heartbeat(30)
        .connection_timeout(Some(settings.connect_timeout))
        .information(Some(
            concat!("asgard-stats ", env!("CARGO_PKG_VERSION")).into(),
        ));
    Connection::insecure_open_stream(stream, options, ConnectionTuning::default())
        .map_err(|e| describe_open_error(&e))
}

/// The broker's refusals in words an operator acts on.
fn describe_open_error(error: &amiquip::Error) -> String {
    let text = error.to_string();
    if matches!(error, amiquip::Error::InvalidCredentials) || text.contains("ACCESS_REFUSED") {
        format!("login refused (check STATS_COLLECTOR_RABBITMQ_USER/_PWD): {text}")
    } else if text.contains("vhost") || text.contains("NOT_ALLOWED") {
        format!("virtual host refused (check STATS_COLLECTOR_RABBITMQ_VHOST): {text}")
    } else {
        text
    }
}

/// One document waiting for its confirm.
struct Pending {
    batch: u64,
    index: usize,
    message_id: String,
}

/// A batch whose documents are not all settled yet.
struct OpenBatch {
    results: Vec<Option<Result<(), DeliveryError>>>,
    unsettled: usize,
    reply: Sender<Vec<Result<(), DeliveryError>>>,
    started: Instant,
}

/// The state of the thread that owns the AMQP channel.
struct PublisherThread {
    connection: Option<Connection>,
    channel: Option<Channel>,
    routing_key: String,
    confirm_timeout: Duration,
    /// The delivery tag the broker gives the next publish (confirms count from 1).
    next_tag: u64,
    pending: BTreeMap<u64, Pending>,
    batches: HashMap<u64, OpenBatch>,
    next_batch: u64,
    /// Unroutable documents by delivery tag; a return arrives before its ack.
    returned: HashMap<u64, DeliveryError>,
    /// Set once the connection failed: every later document fails at once.
    broken: Option<String>,
}

impl PublisherThread {
    fn run(mut self, jobs: Receiver<Job>, confirms: Receiver<Confirm>, returns: Receiver<Return>) {
        let tick = Duration::from_millis(100);
        let mut jobs_open = true;
        while jobs_open || !self.batches.is_empty() {
            let never = crossbeam_channel::never();
            let job_source = if jobs_open { &jobs } else { &never };
            select! {
                recv(job_source) -> job => match job {
                    Ok(job) => self.publish(job),
                    Err(_) => jobs_open = false,
                },
                recv(returns) -> returned => match returned {
                    Ok(returned) => self.on_return(returned),
                    Err(_) => self.fail_all("the connection closed".into()),
                },
                recv(confirms) -> confirm => match confirm {
                    Ok(confirm) => {
                        // The broker sends a message's return before its ack, and the I/O
                        // thread queues them in that order, but select! may pick the ack
                        // first: take every queued return before settling.
                        for returned in returns.try_iter() {
                            self.on_return(returned);
                        }
                        self.on_confirm(confirm);
                    }
                    Err(_) => self.fail_all("the connection closed".into()),
                },
                default(tick) => {}
            }
            self.expire_overdue();
        }
        self.close();
    }

    fn publish(&mut self, job: Job) {
        let batch_id = self.next_batch;
        self.next_batch += 1;
        let size = job.batch.len();
        self.batches.insert(
            batch_id,
            OpenBatch {
                results: vec![None; size],
                unsettled: size,
                reply: job.reply,
                started: Instant::now(),
            },
        );
        for (index, doc) in job.batch.into_iter().enumerate() {
            if let Some(why) = self.broken.clone() {
                self.settle(batch_id, index, Err(DeliveryError::ConnectionLost(why)));
                continue;
            }
            match self.send(&doc) {
                Ok(()) => {
                    let pending = Pending {
                        batch: batch_id,
                        index,
                        message_id: doc.message_id,
                    };
                    self.pending.insert(self.next_tag, pending);
                    self.next_tag += 1;
                }
                Err(why) => {
                    self.settle(
                        batch_id,
                        index,
                        Err(DeliveryError::ConnectionLost(why.clone())),
                    );
                    self.fail_all(why);
                }
            }
        }
    }

    fn send(&self, doc: &Outgoing) -> Result<(), String> {
        let channel = self.channel.as_ref().ok_or("the channel is closed")?;
        let properties = AmqpProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(doc.message_id.clone());
        let publish = Publish {
            body: &doc.body,
            routing_key: self.routing_key.clone(),
            mandatory: true,
            immediate: false,
            properties,
        };
        channel
            .basic_publish("", publish)
            .map_err(|e| e.to_string())
    }

    fn on_return(&mut self, returned: Return) {
        // A return names no delivery tag, only the message; the broker sends it right
        // before the ack of that same message, which is still pending.
        let tag = returned.properties.message_id().as_ref().and_then(|id| {
            // Returns are rare and the returned message is among the oldest pending.
            self.pending
                .iter()
                .find(|(_, p)| p.message_id == id.as_str())
                .map(|(&tag, _)| tag)
        });
        let why = DeliveryError::Unroutable(
            returned.routing_key.clone(),
            format!("{} {}", returned.reply_code, returned.reply_text),
        );
        match tag {
            Some(tag) => {
                self.returned.insert(tag, why);
            }
            None => log::warn!("the broker returned a message this pass does not know: {why}"),
        }
    }

    fn on_confirm(&mut self, confirm: Confirm) {
        let (payload, acked) = match confirm {
            Confirm::Ack(p) => (p, true),
            Confirm::Nack(p) => (p, false),
        };
        let tags: Vec<u64> = if payload.multiple {
            self.pending
                .range(..=payload.delivery_tag)
                .map(|(&t, _)| t)
                .collect()
        } else {
            vec![payload.delivery_tag]
        };
        for tag in tags {
            let Some(p) = self.take_pending(tag) else {
                continue;
            };
            let result = match (self.returned.remove(&tag), acked) {
                (Some(why), _) => Err(why),
                (None, true) => Ok(()),
                (None, false) => Err(DeliveryError::Nacked),
            };
            self.settle(p.batch, p.index, result);
        }
    }

    fn take_pending(&mut self, tag: u64) -> Option<Pending> {
        self.pending.remove(&tag)
    }

    fn settle(&mut self, batch_id: u64, index: usize, result: Result<(), DeliveryError>) {
        let Some(open) = self.batches.get_mut(&batch_id) else {
            return;
        };
        if open.results[index].is_none() {
            open.unsettled -= 1;
        }
        open.results[index] = Some(result);
        if open.unsettled == 0 {
            if let Some(done) = self.batches.remove(&batch_id) {
                let results = done
                    .results
                    .into_iter()
                    .map(|r| r.unwrap_or(Ok(())))
                    .collect();
                // The worker may have given up at the deadline; nothing to tell then.
                let _ = done.reply.send(results);
            }
        }
    }

    /// Fails every unsettled document, for instance when the connection is gone.
    fn fail_all(&mut self, why: String) {
        if self.broken.is_none() {
            log::error!("broker connection failed: {why}");
        }
        self.broken = Some(why.clone());
        self.channel = None;
        self.returned.clear();
        let pending = std::mem::take(&mut self.pending);
        for (_, p) in pending {
            self.settle(
                p.batch,
                p.index,
                Err(DeliveryError::ConnectionLost(why.clone())),
            );
        }
    }

    /// Fails the documents of batches that waited longer than the confirm timeout.
    fn expire_overdue(&mut self) {
        let overdue: Vec<u64> = self
            .batches
            .iter()
            .filter(|(_, b)| b.started.elapsed() > self.confirm_timeout)
            .map(|(&id, _)| id)
            .collect();
        if overdue.is_empty() {
            return;
        }
        let timeout = self.confirm_timeout;
        let tags: Vec<(u64, u64, usize)> = self
            .pending
            .iter()
            .filter(|(_, p)| overdue.contains(&p.batch))
            .map(|(&t, p)| (t, p.batch, p.index))
            .collect();
        for (tag, batch, index) in tags {
            self.take_pending(tag);
            self.returned.remove(&tag);
            self.settle(batch, index, Err(DeliveryError::Unconfirmed(timeout)));
        }
    }

    fn close(mut self) {
        if let Some(channel) = self.channel.take() {
            if let Err(e) = channel.close() {
                log::debug!("closing the broker channel: {e}");
            }
        }
        if let Some(connection) = self.connection.take() {
            if self.broken.is_none() {
                if let Err(e) = connection.close() {
                    log::debug!("closing the broker connection: {e}");
                }
            }
        }
    }
}

/// What `check` learns from the broker once logged in: the queue that receives the
/// routing key (the default exchange routes a key to the queue of that name), or why none.
pub(crate) struct Probe {
    pub(crate) queue: Result<QueueState, String>,
}

pub(crate) struct QueueState {
    pub(crate) messages: u32,
    pub(crate) consumers: u32,
}

/// For `check`: logs in (an error when that fails) and looks for the routing key's queue.
pub(crate) fn probe(settings: &BrokerSettings) -> Result<Probe, ConnectError> {
    let error = |message: String| ConnectError {
        host: settings.host.clone(),
        port: settings.port,
        vhost: settings.vhost.clone(),
        message,
    };
    let mut connection = open_connection(settings).map_err(error)?;
    let channel = connection
        .open_channel(None)
        .map_err(|e| error(format!("cannot open a channel: {e}")))?;
    let queue = channel.queue_declare_passive(settings.routing_key.as_str());
    // The broker closes the channel when the passive declare fails; closing the
    // connection is all that is left to do either way.
    let _ = connection.close();
    Ok(Probe {
        queue: queue
            .map(|q| QueueState {
                messages: q.declared_message_count().unwrap_or(0),
                consumers: q.declared_consumer_count().unwrap_or(0),
            })
            .map_err(|e| e.to_string()),
    })
}
