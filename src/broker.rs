//! Delivery of documents: the narrow [`Publisher`] interface the pass depends on, and its
//! RabbitMQ implementation (design section 7) over the wire protocol of [`crate::amqp`].
//!
//! One connection and one channel serve the whole pass. A publisher thread owns the
//! writing half: worker threads hand it batches and block until every document of their
//! batch is settled (acked, nacked, returned as unroutable, or lost with the connection).
//! A reader thread turns what the broker sends into events, in the order it sent them,
//! so a return is always seen before the ack of the same message. Many batches are in
//! flight at once, so the broker is never idle waiting for a confirm.

use crate::amqp::{self, AmqpError, Event, Login, Message, Session, Writer};
use crate::config::{BrokerAddress, BrokerSettings};
use crate::transport::{self, TlsPeer};
use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender};
use rustls::ClientConfig;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
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
    fn publish_batch(&self, batch: Vec<Outgoing>) -> Vec<Result<(), DeliveryError>>;

    /// Finishes the pass: flushes what the implementation buffered and closes it.
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

/// Why one broker of the list could not be used.
#[derive(Debug, thiserror::Error)]
#[error("broker {address} (vhost {vhost:?}): {message}")]
pub(crate) struct ConnectError {
    address: String,
    vhost: String,
    message: String,
}

/// No broker of the list could be used at the start of a pass; each with its reason.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub(crate) struct NoBroker(Vec<ConnectError>);

impl NoBroker {
    fn describe(&self) -> String {
        match &self.0[..] {
            [only] => only.to_string(),
            all => {
                let each: Vec<String> = all.iter().map(ToString::to_string).collect();
                format!("no broker accepted the login: {}", each.join("; "))
            }
        }
    }
}

/// A batch handed to the publisher thread, with where to send its results.
struct Job {
    batch: Vec<Outgoing>,
    reply: Sender<Settled>,
}

/// A batch's results, and its documents handed back so that the worker thread that
/// allocated them also frees them (cheaper for the allocator than freeing here).
type Settled = (Vec<Result<(), DeliveryError>>, Vec<Outgoing>);

/// The RabbitMQ publisher: a handle to the thread that owns the connection.
pub(crate) struct AmqpPublisher {
    jobs: Sender<Job>,
    thread: std::thread::JoinHandle<()>,
}

impl AmqpPublisher {
    /// Connects, logs in, opens the channel and turns publisher confirms on.
    pub(crate) fn connect(
        settings: &BrokerSettings,
        declare_queue: bool,
    ) -> Result<AmqpPublisher, NoBroker> {
        let (mut session, address) = open_first(settings)?;
        let error = |message: String| NoBroker(vec![connect_error(settings, address, message)]);
        if declare_queue {
            session
                .declare_queue(&settings.routing_key, false)
                .map_err(|e| error(format!("cannot declare queue: {e}")))?;
        }
        session
            .enable_confirms()
            .map_err(|e| error(format!("cannot enable publisher confirms: {e}")))?;
        let (writer, mut reader) = session.split().map_err(|e| error(e.to_string()))?;
        let (events, event_queue) = unbounded::<Vec<Event>>();
        std::thread::Builder::new()
            .name("amqp-reader".into())
            .spawn(move || loop {
                let batch = reader.next_events();
                let closed = matches!(batch.last(), Some(Event::Closed(_)));
                if events.send(batch).is_err() || closed {
                    break;
                }
            })
            .map_err(|e| error(format!("cannot start the reader thread: {e}")))?;
        let (jobs, job_queue) = bounded::<Job>(256);
        let worker = PublisherThread {
            writer,
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
            .spawn(move || worker.run(job_queue, event_queue))
            .map_err(|e| error(format!("cannot start the publisher thread: {e}")))?;
        Ok(AmqpPublisher { jobs, thread })
    }
}

impl Publisher for AmqpPublisher {
    fn publish_batch(&self, batch: Vec<Outgoing>) -> Vec<Result<(), DeliveryError>> {
        if batch.is_empty() {
            return Vec::new();
        }
        let size = batch.len();
        let (reply, answer) = bounded(1);
        let job = Job { batch, reply };
        let lost = || vec![Err(DeliveryError::ConnectionLost("publisher stopped".into())); size];
        if self.jobs.send(job).is_err() {
            return lost();
        }
        answer
            .recv()
            .map_or_else(|_| lost(), |(results, _docs)| results)
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        let AmqpPublisher { jobs, thread } = *self;
        drop(jobs);
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the publisher thread panicked"))
    }
}

fn connect_error(
    settings: &BrokerSettings,
    address: &BrokerAddress,
    message: String,
) -> ConnectError {
    ConnectError {
        address: address.to_string(),
        vhost: settings.vhost.clone(),
        message,
    }
}

/// The TLS settings for the `amqps://` brokers of the list (None when there are none):
/// the CA file's certificates, or the system's roots.
pub(crate) fn tls_config(settings: &BrokerSettings) -> Result<Option<Arc<ClientConfig>>, String> {
    if !settings.hosts.iter().any(|h| h.tls) {
        return Ok(None);
    }
    transport::client_config(settings.ca_file.as_deref()).map(Some)
}

/// Logs in to the first broker of the list that accepts, saying which.
fn open_first(settings: &BrokerSettings) -> Result<(Session, &BrokerAddress), NoBroker> {
    let tls = tls_config(settings);
    let mut failures = Vec::new();
    for address in &settings.hosts {
        let tls = match (&tls, address.tls) {
            (Err(why), true) => {
                failures.push(connect_error(settings, address, why.clone()));
                continue;
            }
            (tls, _) => tls.as_ref().ok().and_then(Option::as_ref),
        };
        match open_session(settings, address, tls) {
            Ok((session, _)) => {
                log::info!(broker = address.to_string().as_str(); "broker {address}: logged in as {}", settings.user);
                return Ok((session, address));
            }
            Err(e) => {
                if settings.hosts.len() > 1 {
                    log::warn!("{e}");
                }
                failures.push(e);
            }
        }
    }
    Err(NoBroker(failures))
}

/// Connects (TLS for `amqps://`) within the connect timeout and logs in.
fn open_session(
    settings: &BrokerSettings,
    address: &BrokerAddress,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(Session, Option<TlsPeer>), ConnectError> {
    let error = |message: String| connect_error(settings, address, message);
    let tls = tls.filter(|_| address.tls);
    let mut link = transport::connect(&address.host, address.port, tls, settings.connect_timeout)
        .map_err(|e| error(e.to_string()))?;
    let peer = link.peer.take();
    let login = Login {
        user: &settings.user,
        password: settings.password.expose(),
        vhost: &settings.vhost,
    };
    let session = Session::open(link, &login).map_err(|e| error(e.to_string()))?;
    Ok((session, peer))
}

/// One document waiting for its confirm.
struct Pending {
    batch: u64,
    index: usize,
}

/// A batch whose documents are not all settled yet.
struct OpenBatch {
    docs: Vec<Outgoing>,
    results: Vec<Option<Result<(), DeliveryError>>>,
    unsettled: usize,
    reply: Sender<Settled>,
    started: Instant,
}

/// The state of the thread that owns the writing half of the connection.
struct PublisherThread {
    writer: Writer,
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
    fn run(mut self, jobs: Receiver<Job>, events: Receiver<Vec<Event>>) {
        let tick = Duration::from_millis(100);
        let mut jobs_open = true;
        let mut events_open = true;
        while jobs_open || !self.batches.is_empty() {
            let never_job = crossbeam_channel::never();
            let never_event = crossbeam_channel::never();
            let job_source = if jobs_open { &jobs } else { &never_job };
            let event_source = if events_open { &events } else { &never_event };
            select! {
                recv(job_source) -> job => match job {
                    Ok(job) => self.publish(job),
                    Err(_) => jobs_open = false,
                },
                recv(event_source) -> batch => match batch {
                    Ok(batch) => batch.into_iter().for_each(|event| self.on_event(event)),
                    Err(_) => {
                        events_open = false;
                        self.fail_all("the connection closed".into());
                    }
                },
                default(tick) => {}
            }
            self.expire_overdue();
        }
        self.close(&events);
    }

    fn publish(&mut self, job: Job) {
        let batch_id = self.next_batch;
        self.next_batch += 1;
        let size = job.batch.len();
        self.batches.insert(
            batch_id,
            OpenBatch {
                docs: job.batch,
                results: vec![None; size],
                unsettled: size,
                reply: job.reply,
                started: Instant::now(),
            },
        );
        if let Some(why) = self.broken.clone() {
            for index in 0..size {
                self.settle(
                    batch_id,
                    index,
                    Err(DeliveryError::ConnectionLost(why.clone())),
                );
            }
            return;
        }
        let docs = self.batches.get(&batch_id).map_or(&[][..], |b| &b.docs[..]);
        for (index, doc) in docs.iter().enumerate() {
            self.writer.push(&Message {
                routing_key: &self.routing_key,
                message_id: &doc.message_id,
                body: &doc.body,
            });
            let pending = Pending {
                batch: batch_id,
                index,
            };
            self.pending.insert(self.next_tag, pending);
            self.next_tag += 1;
        }
        // The whole batch leaves in one write.
        if let Err(e) = self.writer.flush() {
            self.fail_all(format!("cannot send: {e}"));
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Confirm { tag, multiple, ack } => self.on_confirm(tag, multiple, ack),
            Event::Returned {
                message_id,
                routing_key,
                reason,
            } => self.on_return(message_id, routing_key, reason),
            Event::Blocked(why) => log::warn!("the broker blocks publishers: {why}"),
            Event::Unblocked => log::info!("the broker accepts publishers again"),
            Event::Closed(why) => self.fail_all(why),
        }
    }

    fn on_return(&mut self, message_id: Option<String>, routing_key: String, reason: String) {
        // A return names no delivery tag, only the message; the broker sends it right
        // before the ack of that same message, which is still pending. Returns are rare
        // and the returned message is among the oldest pending.
        let message_id_of = |p: &Pending| {
            let doc = self.batches.get(&p.batch)?.docs.get(p.index)?;
            Some(doc.message_id.as_str())
        };
        let tag = message_id.as_deref().and_then(|id| {
            self.pending
                .iter()
                .find(|(_, p)| message_id_of(p) == Some(id))
                .map(|(&tag, _)| tag)
        });
        let why = DeliveryError::Unroutable(routing_key, reason);
        match tag {
            Some(tag) => {
                self.returned.insert(tag, why);
            }
            None => log::warn!("the broker returned a message this pass does not know: {why}"),
        }
    }

    fn on_confirm(&mut self, tag: u64, multiple: bool, acked: bool) {
        let tags: Vec<u64> = if multiple {
            self.pending.range(..=tag).map(|(&t, _)| t).collect()
        } else {
            vec![tag]
        };
        for tag in tags {
            let Some(p) = self.pending.remove(&tag) else {
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
                let _ = done.reply.send((results, done.docs));
            }
        }
    }

    /// Fails every unsettled document, for instance when the connection is gone.
    fn fail_all(&mut self, why: String) {
        if self.broken.is_none() {
            log::error!("broker connection failed: {why}");
            self.writer.shutdown();
        }
        self.broken = Some(why.clone());
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
        let timeout = self.confirm_timeout;
        let overdue: Vec<u64> = self
            .batches
            .iter()
            .filter(|(_, b)| b.started.elapsed() > timeout)
            .map(|(&id, _)| id)
            .collect();
        if overdue.is_empty() {
            return;
        }
        let tags: Vec<(u64, u64, usize)> = self
            .pending
            .iter()
            .filter(|(_, p)| overdue.contains(&p.batch))
            .map(|(&t, p)| (t, p.batch, p.index))
            .collect();
        for (tag, batch, index) in tags {
            self.pending.remove(&tag);
            self.returned.remove(&tag);
            self.settle(batch, index, Err(DeliveryError::Unconfirmed(timeout)));
        }
    }

    /// Closes the connection politely: asks the broker to close and waits a moment for
    /// its answer, then ends the socket whatever happened.
    fn close(mut self, events: &Receiver<Vec<Event>>) {
        if self.broken.is_none() && self.writer.close().is_ok() {
            let deadline = Instant::now() + Duration::from_secs(1);
            while let Ok(batch) = events.recv_deadline(deadline) {
                if matches!(batch.last(), Some(Event::Closed(_))) {
                    break;
                }
            }
        }
        self.writer.shutdown();
    }
}

/// What `check` learns from the broker once logged in: the queue that receives the
/// routing key (the default exchange routes a key to the queue of that name), or why none.
pub(crate) struct Probe {
    pub(crate) queue: Result<amqp::QueueState, String>,
    /// The TLS version and certificate subject of an `amqps://` broker.
    pub(crate) tls: Option<TlsPeer>,
}

/// For `check`: logs in to one broker of the list (an error when that fails) and looks
/// for the routing key's queue.
pub(crate) fn probe(
    settings: &BrokerSettings,
    address: &BrokerAddress,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Probe, ConnectError> {
    let (mut session, tls) = open_session(settings, address, tls)?;
    let queue = session.declare_queue(&settings.routing_key, true);
    session.close();
    Ok(Probe {
        tls,
        queue: queue.map_err(|e| match e {
            AmqpError::ChannelClosed(why) => why,
            other => other.to_string(),
        }),
    })
}
