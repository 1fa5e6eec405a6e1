//! The thread that owns the writing half of the broker connection: publishes batches,
//! matches confirms and returns to their documents, and gives the connection up on an
//! overdue confirm or a lost connection.
//!
//! A broker that blocks publishers (`connection.blocked`, a memory or disk alarm) is not
//! written to until it unblocks; blocked past the blocked timeout, the publisher halts:
//! every waiting document fails and the pass starts no more agents
//! ([`crate::broker::Publisher::halted`]).

use crate::broker::amqp::{Event, Message, Writer};
use crate::broker::{Batch, DeliveryError};
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A batch handed to the publisher thread, with where to send its results.
pub(super) struct Job {
    pub(super) batch: Batch,
    pub(super) reply: SyncSender<Settled>,
}

/// What the publisher thread waits for: a batch from a worker, or what the broker sent
/// (from the reader thread). One queue for both, so the thread waits in one place: a std
/// channel parks a waiting thread at once, where a select over two crossbeam channels
/// first spun and called `sched_yield`, which on a busy machine switches threads.
pub(super) enum Input {
    Job(Job),
    Events(Vec<Event>),
    /// The publisher's handle is gone: no more batches come.
    NoMoreJobs,
}

/// A batch's results, and its documents handed back so that the worker thread that
/// allocated them also frees them (cheaper for the allocator than freeing here).
pub(super) type Settled = (Vec<Result<(), DeliveryError>>, Batch);

/// One document waiting for its confirm.
struct Pending {
    batch: u64,
    index: usize,
    /// Set when the broker returned it as unroutable; its ack follows.
    returned: Option<DeliveryError>,
}

/// A batch whose documents are not all settled yet.
struct OpenBatch {
    docs: Batch,
    results: Vec<Option<Result<(), DeliveryError>>>,
    unsettled: usize,
    reply: SyncSender<Settled>,
    /// When its confirms began to be awaited (restarted when the broker unblocks).
    started: Instant,
}

/// The broker's `connection.blocked`: since when, and the alarm it named.
struct Blocked {
    since: Instant,
    reason: String,
}

/// The state of the thread that owns the writing half of the connection.
pub(super) struct PublisherThread {
    writer: Writer,
    /// Where every document goes (each with its own routing key).
    exchange: String,
    confirm_timeout: Duration,
    blocked_timeout: Duration,
    /// The delivery tag the broker gives the next publish (confirms count from 1).
    next_tag: u64,
    pending: BTreeMap<u64, Pending>,
    batches: HashMap<u64, OpenBatch>,
    next_batch: u64,
    /// Set once the connection is given up: every later document fails with it at once.
    broken: Option<DeliveryError>,
    /// While set, nothing is written: a blocked broker does not read, and a write would
    /// only wait for the write timeout. Messages pushed meanwhile wait in the buffer.
    blocked: Option<Blocked>,
    pub(super) halted: Arc<OnceLock<String>>,
}

impl PublisherThread {
    pub(super) fn new(
        writer: Writer,
        exchange: String,
        confirm_timeout: Duration,
        blocked_timeout: Duration,
    ) -> PublisherThread {
        PublisherThread {
            writer,
            exchange,
            confirm_timeout,
            blocked_timeout,
            next_tag: 1,
            pending: BTreeMap::new(),
            batches: HashMap::new(),
            next_batch: 0,
            broken: None,
            blocked: None,
            halted: Arc::new(OnceLock::new()),
        }
    }

    pub(super) fn run(mut self, inputs: Receiver<Input>) {
        let tick = Duration::from_millis(100);
        let mut jobs_open = true;
        while jobs_open || !self.batches.is_empty() {
            match inputs.recv_timeout(tick) {
                Ok(Input::Job(job)) => self.publish(job),
                Ok(Input::Events(batch)) => {
                    batch.into_iter().for_each(|event| self.on_event(event))
                }
                Ok(Input::NoMoreJobs) => jobs_open = false,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // The handle and the reader thread are both gone: nothing will settle
                    // what is still pending.
                    self.fail_all(DeliveryError::ConnectionLost(
                        "the connection closed".into(),
                    ));
                    break;
                }
            }
            self.halt_if_blocked_too_long();
            self.expire_overdue();
        }
        self.close(&inputs);
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
                self.settle(batch_id, index, Err(why.clone()));
            }
            return;
        }
        let mut refused = Vec::new();
        let Some(open) = self.batches.get(&batch_id) else {
            return;
        };
        for index in 0..open.docs.len() {
            // Every index below len() has its document (each ends where it was written);
            // one that did not would be refused, never sent short or out of place.
            let Some(doc) = open.docs.get(index) else {
                refused.push((index, DeliveryError::Unencodable("not in its batch".into())));
                continue;
            };
            let message = Message {
                exchange: &self.exchange,
                routing_key: doc.routing_key,
                message_id: doc.message_id,
                body: doc.body,
            };
            // A refused message is not sent, so it takes no delivery tag.
            if let Err(e) = self.writer.push(&message) {
                refused.push((index, DeliveryError::Unencodable(e.to_string())));
                continue;
            }
            let pending = Pending {
                batch: batch_id,
                index,
                returned: None,
            };
            self.pending.insert(self.next_tag, pending);
            self.next_tag += 1;
        }
        for (index, why) in refused {
            self.settle(batch_id, index, Err(why));
        }
        self.flush();
    }

    /// Sends what was pushed, in one write, unless the broker blocks publishing.
    fn flush(&mut self) {
        if self.blocked.is_some() || self.broken.is_some() {
            return;
        }
        if let Err(e) = self.writer.flush() {
            self.fail_all(DeliveryError::ConnectionLost(format!("cannot send: {e}")));
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
            Event::Blocked(reason) => self.on_blocked(reason),
            Event::Unblocked => self.on_unblocked(),
            Event::Closed(why) => self.fail_all(DeliveryError::ConnectionLost(why)),
        }
    }

    fn on_blocked(&mut self, reason: String) {
        log::warn!(
            "the broker blocks publishing ({reason}): waiting up to {:?} for it to unblock",
            self.blocked_timeout
        );
        self.blocked.get_or_insert(Blocked {
            since: Instant::now(),
            reason,
        });
    }

    fn on_unblocked(&mut self) {
        if self.blocked.take().is_none() {
            return;
        }
        log::info!("the broker accepts publishing again");
        // Confirms could not come while nothing was read: their wait starts now.
        let now = Instant::now();
        self.batches.values_mut().for_each(|b| b.started = now);
        self.flush();
    }

    /// Gives up once the broker has blocked publishing longer than the bound: the waiting
    /// documents fail (their readings stay) and the pass starts no more agents.
    fn halt_if_blocked_too_long(&mut self) {
        let Some(blocked) = &self.blocked else {
            return;
        };
        if blocked.since.elapsed() <= self.blocked_timeout || self.broken.is_some() {
            return;
        }
        let reason = blocked.reason.clone();
        log::error!(
            "the broker blocked publishing for over {:?} ({reason}): the pass starts no more agents, and the documents waiting are not delivered",
            self.blocked_timeout
        );
        let _ = self.halted.set(reason.clone());
        self.fail_all(DeliveryError::Blocked(reason, self.blocked_timeout));
    }

    /// Returns come in publish order on the channel, each before the ack of its message,
    /// so a return belongs to the oldest pending message not returned yet. The one
    /// exception: a routable message published before it and still waiting for its ack
    /// (when a queue is bound or deleted mid-pass); the returned message id, exact since
    /// ids are never cut, tells them apart then. A return is never dropped while a
    /// message is pending: counting a returned message delivered would lose its interval.
    fn on_return(&mut self, message_id: Option<String>, routing_key: String, reason: String) {
        let why = DeliveryError::Unroutable(routing_key, reason);
        let mut unreturned = self.pending.iter().filter(|(_, p)| p.returned.is_none());
        let oldest = unreturned.clone().next().map(|(&tag, _)| tag);
        let named = message_id.as_deref().and_then(|id| {
            unreturned
                .find(|(_, p)| self.message_id_of(p) == Some(id))
                .map(|(&tag, _)| tag)
        });
        match named.or(oldest).and_then(|tag| self.pending.get_mut(&tag)) {
            Some(pending) => pending.returned = Some(why),
            None => log::warn!("the broker returned a message this pass does not wait for: {why}"),
        }
    }

    fn message_id_of(&self, pending: &Pending) -> Option<&str> {
        let doc = self.batches.get(&pending.batch)?.docs.get(pending.index)?;
        Some(doc.message_id)
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
            let result = match (p.returned, acked) {
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
        let Some(slot) = open.results.get_mut(index) else {
            return;
        };
        if slot.is_none() {
            open.unsettled -= 1;
        }
        *slot = Some(result);
        if open.unsettled == 0 {
            if let Some(done) = self.batches.remove(&batch_id) {
                // The worker may have given up at the deadline; nothing to tell then.
                let _ = done.reply.send((outcomes(done.results), done.docs));
            }
        }
    }

    /// Gives the connection up: every unsettled document fails with `why`, and so does
    /// every later one, at once.
    fn fail_all(&mut self, why: DeliveryError) {
        if self.broken.is_none() {
            log::error!("the broker connection is given up: {why}");
            self.writer.shutdown();
            self.broken = Some(why.clone());
        }
        let pending = std::mem::take(&mut self.pending);
        for (_, p) in pending {
            self.settle(p.batch, p.index, Err(why.clone()));
        }
    }

    /// A confirm overdue by the confirm timeout (the broker not blocking) gives the
    /// connection up: it is not answering, and each later batch would wait as long.
    fn expire_overdue(&mut self) {
        if self.blocked.is_some() {
            return;
        }
        let timeout = self.confirm_timeout;
        let overdue = self.batches.values().any(|b| b.started.elapsed() > timeout);
        if overdue {
            self.fail_all(DeliveryError::Unconfirmed(timeout));
        }
    }

    /// Closes the connection politely: asks the broker to close and waits a moment for
    /// its answer, then ends the socket whatever happened.
    fn close(mut self, inputs: &Receiver<Input>) {
        if self.broken.is_none() && self.blocked.is_none() && self.writer.close().is_ok() {
            let deadline = Instant::now() + Duration::from_secs(1);
            loop {
                match inputs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(Input::Events(batch)) if matches!(batch.last(), Some(Event::Closed(_))) => {
                        break
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        self.writer.shutdown();
    }
}

/// A settled batch's results: a document whose outcome never arrived is a failed
/// delivery, so its reading stays for the next pass. `settle` answers a batch only once
/// every document has an outcome, so this is a safeguard: an outcome left unset by a
/// later change fails its document rather than counting it delivered.
fn outcomes(results: Vec<Option<Result<(), DeliveryError>>>) -> Vec<Result<(), DeliveryError>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(DeliveryError::Unknown)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;

    /// A publisher thread writing to a socket whose other end is returned, unread.
    fn publisher(
        confirm_timeout: Duration,
        blocked_timeout: Duration,
    ) -> (PublisherThread, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let writer = Writer::over(client);
        let thread = PublisherThread::new(writer, "".into(), confirm_timeout, blocked_timeout);
        (thread, server)
    }

    fn relaxed() -> (PublisherThread, TcpStream) {
        publisher(Duration::from_secs(60), Duration::from_secs(60))
    }

    /// Hands the thread a batch of documents with these message ids.
    fn publish(thread: &mut PublisherThread, ids: &[&str]) -> Receiver<Settled> {
        let (reply, answer) = mpsc::sync_channel(1);
        let mut batch = Batch::default();
        for id in ids {
            batch.push(
                |out| out.push_str(id),
                |out| out.push_str("rk"),
                |out| out.extend_from_slice(b"{}"),
            );
        }
        thread.publish(Job { batch, reply });
        answer
    }

    fn results(answer: &Receiver<Settled>) -> Vec<Result<(), DeliveryError>> {
        answer.try_recv().expect("the batch is settled").0
    }

    fn returned(message_id: Option<&str>) -> Event {
        Event::Returned {
            message_id: message_id.map(str::to_string),
            routing_key: "rk".into(),
            reason: "312 NO_ROUTE".into(),
        }
    }

    fn ack(tag: u64, multiple: bool) -> Event {
        Event::Confirm {
            tag,
            multiple,
            ack: true,
        }
    }

    fn unroutable(results: &[Result<(), DeliveryError>]) -> Vec<bool> {
        results
            .iter()
            .map(|r| matches!(r, Err(DeliveryError::Unroutable(..))))
            .collect()
    }

    #[test]
    fn returns_belong_to_the_oldest_pending_message_not_returned_yet() {
        let (mut thread, _server) = relaxed();
        let answer = publish(&mut thread, &["a", "b", "c"]);
        // No message id at all (or a cut one): publish order alone decides.
        thread.on_event(returned(None));
        thread.on_event(returned(Some("cut beyond recognition")));
        thread.on_event(ack(3, true));
        assert_eq!(unroutable(&results(&answer)), [true, true, false]);
    }

    #[test]
    fn a_routable_message_still_awaiting_its_ack_is_told_apart_by_the_message_id() {
        let (mut thread, _server) = relaxed();
        let answer = publish(&mut thread, &["a", "b"]);
        // "a" went to a queue and awaits its ack; "b" found none: returned, acked first.
        thread.on_event(returned(Some("b")));
        thread.on_event(ack(2, false));
        thread.on_event(ack(1, false));
        assert_eq!(unroutable(&results(&answer)), [false, true]);
    }

    #[test]
    fn an_outcome_that_never_arrived_is_a_failed_delivery() {
        let settled = outcomes(vec![Some(Ok(())), None, Some(Err(DeliveryError::Nacked))]);
        assert_eq!(
            settled,
            [
                Ok(()),
                Err(DeliveryError::Unknown),
                Err(DeliveryError::Nacked)
            ]
        );
    }

    #[test]
    fn an_overdue_confirm_gives_the_connection_up_so_later_batches_fail_at_once() {
        let (mut thread, _server) = publisher(Duration::ZERO, Duration::from_secs(60));
        let first = publish(&mut thread, &["a", "b"]);
        std::thread::sleep(Duration::from_millis(5));
        thread.expire_overdue();
        let timeout = Err(DeliveryError::Unconfirmed(Duration::ZERO));
        assert_eq!(results(&first), [timeout.clone(), timeout.clone()]);
        let later = publish(&mut thread, &["c"]);
        assert_eq!(results(&later), [timeout], "failed without waiting");
        assert!(
            thread.halted.get().is_none(),
            "only a blocked broker halts the pass"
        );
    }

    #[test]
    fn nothing_is_written_while_the_broker_blocks_and_all_of_it_once_it_unblocks() {
        let (mut thread, mut server) = relaxed();
        server
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        thread.on_event(Event::Blocked("low on memory".into()));
        let answer = publish(&mut thread, &["a", "b"]);
        let mut buffer = [0u8; 4096];
        assert!(
            server.read(&mut buffer).is_err(),
            "nothing written while blocked"
        );
        thread.on_event(Event::Unblocked);
        let mut written = 0;
        while let Ok(n @ 1..) = server.read(&mut buffer) {
            written += n;
        }
        assert!(written > 0, "written once unblocked");
        thread.on_event(ack(2, true));
        assert_eq!(results(&answer), [Ok(()), Ok(())]);
    }

    #[test]
    fn blocked_past_the_bound_the_waiting_documents_fail_and_the_pass_halts() {
        let (mut thread, _server) = publisher(Duration::ZERO, Duration::ZERO);
        thread.on_event(Event::Blocked("low on memory".into()));
        let answer = publish(&mut thread, &["a"]);
        std::thread::sleep(Duration::from_millis(5));
        thread.expire_overdue();
        assert!(
            answer.try_recv().is_err(),
            "no confirm timeout while the broker blocks"
        );
        thread.halt_if_blocked_too_long();
        let blocked = Err(DeliveryError::Blocked(
            "low on memory".into(),
            Duration::ZERO,
        ));
        assert_eq!(results(&answer), std::slice::from_ref(&blocked));
        assert_eq!(
            thread.halted.get().map(String::as_str),
            Some("low on memory")
        );
        let later = publish(&mut thread, &["b"]);
        assert_eq!(results(&later), [blocked]);
    }
}
