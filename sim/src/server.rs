//! One listening socket (a master or an agent) and everything that happens on it: the
//! accept loop, applying the current fault to each connection, closing and re-binding
//! the socket for `Refuse`, and stopping promptly when the cluster is dropped.
//!
//! Masters and agents share this code so a fault behaves the same on both. Each endpoint
//! has one small-stack thread blocking in accept() and answering healthy requests inline;
//! only `Slow` and `Hang` connections get their own thread, so they never hold up the
//! endpoint's next request.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use rustls::ServerConfig;

use crate::http::{self, Framing, Request, Response};
use crate::tls::Conn;
use crate::AgentFault;

/// Bounds every read and write of a connection.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds them for `SlowBody`, whose client may wait before it reads the body.
const SLOW_BODY_IO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fault setter waits for the listener thread to close or re-bind its socket.
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to try the self-connection that unblocks accept().
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed accept() (e.g. out of file descriptors) so the loop can't spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// What a healthy master or agent answers.
pub(crate) trait Service: Send + Sync + 'static {
    /// The answer to an authorized GET.
    fn respond(&self, request: &Request) -> Response;
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves consistent data
/// even if a thread panicked holding the lock.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Settings and signals shared by all endpoints of one cluster.
pub(crate) struct Shared {
    pub tls: Option<Arc<ServerConfig>>,
    /// The base64 `principal:secret` every request must carry, when auth is on.
    pub auth_token: Option<String>,
    stack_size: usize,
    stopped: Mutex<bool>,
    stopped_changed: Condvar,
    running: Mutex<usize>,
    running_changed: Condvar,
}

impl Shared {
    pub fn new(tls: Option<Arc<ServerConfig>>, auth_token: Option<String>) -> Shared {
        // rustls handshakes need more stack than plain HTTP answers.
        let stack_size = if tls.is_some() { 512 } else { 128 } * 1024;
        Shared {
            tls,
            auth_token,
            stack_size,
            stopped: Mutex::new(false),
            stopped_changed: Condvar::new(),
            running: Mutex::new(0),
            running_changed: Condvar::new(),
        }
    }

    /// Tells every sleeping connection thread that the cluster is going away.
    pub fn stop(&self) {
        *lock(&self.stopped) = true;
        self.stopped_changed.notify_all();
    }

    /// Sleeps up to `timeout` (forever when None); true when the cluster is stopping.
    fn wait_for_stop(&self, timeout: Option<Duration>) -> bool {
        let stopped = lock(&self.stopped);
        let keep_waiting = |stopped: &mut bool| !*stopped;
        match timeout {
            None => *self
                .stopped_changed
                .wait_while(stopped, keep_waiting)
                .unwrap_or_else(PoisonError::into_inner),
            Some(timeout) => {
                *self
                    .stopped_changed
                    .wait_timeout_while(stopped, timeout, keep_waiting)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        }
    }

    /// Waits until every thread of the cluster has ended, or `timeout` passed: a thread
    /// stuck writing to a client that stopped reading must not hang the caller.
    pub fn wait_idle(&self, timeout: Duration) {
        let running = lock(&self.running);
        let _ = self
            .running_changed
            .wait_timeout_while(running, timeout, |running| *running > 0);
    }
}

/// Counts a thread as running for as long as it is alive.
struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        *lock(&self.0.running) -= 1;
        self.0.running_changed.notify_all();
    }
}

/// Starts a small-stack thread that `Shared::wait_idle` waits for.
fn spawn(
    shared: &Arc<Shared>,
    name: String,
    work: impl FnOnce() + Send + 'static,
) -> io::Result<()> {
    // Counted before the thread exists so a concurrent wait_idle cannot miss it.
    *lock(&shared.running) += 1;
    let running = Running(Arc::clone(shared));
    thread::Builder::new()
        .name(name)
        .stack_size(shared.stack_size)
        .spawn(move || {
            let _running = running;
            work();
        })?;
    Ok(())
}

/// What the listener thread is told to do, and what it has done.
struct Control {
    fault: AgentFault,
    stopping: bool,
    /// Whether the thread currently holds a bound listener.
    open: bool,
    /// Bumped by every fault change.
    epoch: u64,
    /// The last epoch whose open/closed state the thread has brought about (or given up on).
    applied: u64,
}

enum Action {
    Stop,
    Accept,
    Close,
    Rebind(u64),
}

/// One master or agent listener.
pub(crate) struct Endpoint {
    addr: SocketAddr,
    /// Requests to this path are counted in `served`.
    counted_path: &'static str,
    service: Box<dyn Service>,
    shared: Arc<Shared>,
    control: Mutex<Control>,
    control_changed: Condvar,
    served: AtomicU64,
    last_auth: Mutex<Option<String>>,
}

impl Endpoint {
    /// Serves `service` on `listener` from a new thread named `name`.
    pub fn start(
        listener: TcpListener,
        service: Box<dyn Service>,
        counted_path: &'static str,
        shared: &Arc<Shared>,
        name: String,
    ) -> io::Result<Arc<Endpoint>> {
        let endpoint = Arc::new(Endpoint {
            addr: listener.local_addr()?,
            counted_path,
            service,
            shared: Arc::clone(shared),
            control: Mutex::new(Control {
                fault: AgentFault::Healthy,
                stopping: false,
                open: true,
                epoch: 0,
                applied: 0,
            }),
            control_changed: Condvar::new(),
            served: AtomicU64::new(0),
            last_auth: Mutex::new(None),
        });
        let worker = Arc::clone(&endpoint);
        spawn(shared, name, move || worker.run(listener))?;
        Ok(endpoint)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests to the counted path got an answer.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    pub fn last_auth(&self) -> Option<String> {
        lock(&self.last_auth).clone()
    }

    /// Applies `fault` to connections accepted from now on. Returns once the socket is
    /// closed (for `Refuse`) or bound again (when lifting `Refuse`), so callers can rely
    /// on the new behaviour right away.
    pub fn set_fault(&self, fault: AgentFault) {
        let want_open = fault != AgentFault::Refuse;
        let mut control = lock(&self.control);
        control.fault = fault;
        control.epoch += 1;
        let target = control.epoch;
        let must_close = control.open && !want_open;
        let must_change = control.open != want_open;
        self.control_changed.notify_all();
        drop(control);
        if must_close {
            self.wake();
        }
        if must_change {
            let control = lock(&self.control);
            let _ = self
                .control_changed
                .wait_timeout_while(control, APPLY_TIMEOUT, |c| {
                    c.applied < target && !c.stopping
                });
        }
    }

    /// Makes the listener thread close its socket and end.
    pub fn stop(&self) {
        let mut control = lock(&self.control);
        control.stopping = true;
        let open = control.open;
        self.control_changed.notify_all();
        drop(control);
        if open {
            self.wake();
        }
    }

    /// Unblocks accept() with a throwaway connection: std offers no other portable way.
    /// The thread re-reads its control after every accept, so it will see the change.
    fn wake(&self) {
        // Failure means the socket is already closed, which is all a wake is for.
        let _ = TcpStream::connect_timeout(&self.addr, WAKE_TIMEOUT);
    }

    fn run(self: &Arc<Self>, first: TcpListener) {
        let mut listener = Some(first);
        let mut gave_up_at = None;
        loop {
            match self.next_action(listener.is_some(), gave_up_at) {
                Action::Stop => return,
                Action::Accept => {
                    if let Some(listener) = &listener {
                        self.accept_one(listener);
                    }
                }
                // Dropping the socket is what makes connections get refused.
                Action::Close => listener = None,
                Action::Rebind(epoch) => {
                    listener = self.rebind();
                    gave_up_at = listener.is_none().then_some(epoch);
                }
            }
        }
    }

    /// Decides the thread's next step from its control, waiting while there is nothing
    /// to do (closed for `Refuse`, or a failed re-bind awaiting the next fault change).
    fn next_action(&self, open: bool, gave_up_at: Option<u64>) -> Action {
        let mut control = lock(&self.control);
        loop {
            if control.stopping {
                return Action::Stop;
            }
            let want_open = control.fault != AgentFault::Refuse;
            let gave_up = gave_up_at == Some(control.epoch);
            control.open = open;
            if (open == want_open || gave_up) && control.applied != control.epoch {
                control.applied = control.epoch;
                self.control_changed.notify_all();
            }
            match (open, want_open) {
                (true, true) => return Action::Accept,
                (true, false) => return Action::Close,
                (false, true) if !gave_up => return Action::Rebind(control.epoch),
                _ => {
                    control = self
                        .control_changed
                        .wait(control)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        }
    }

    fn rebind(&self) -> Option<TcpListener> {
        TcpListener::bind(self.addr)
            .map_err(|e| eprintln!("mesos-sim: cannot listen on {} again: {e}", self.addr))
            .ok()
    }

    fn accept_one(self: &Arc<Self>, listener: &TcpListener) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("mesos-sim: accept on {} failed: {e}", self.addr);
                thread::sleep(ACCEPT_RETRY);
                return;
            }
        };
        let control = lock(&self.control);
        // A wake-up connection, or a client racing a shutdown or `Refuse`: drop it.
        if control.stopping || control.fault == AgentFault::Refuse {
            return;
        }
        let fault = control.fault.clone();
        drop(control);
        self.dispatch(stream, fault);
    }

    /// Serves healthy-ish connections inline; delayed ones on their own thread.
    fn dispatch(self: &Arc<Self>, stream: TcpStream, fault: AgentFault) {
        if !matches!(
            fault,
            AgentFault::Hang
                | AgentFault::Slow(_)
                | AgentFault::SlowBody { .. }
                | AgentFault::Raw { .. }
        ) {
            return self.serve(stream, &fault);
        }
        let endpoint = Arc::clone(self);
        let name = format!("sim-conn-{}", self.addr.port());
        if let Err(e) = spawn(&self.shared, name, move || endpoint.serve(stream, &fault)) {
            eprintln!(
                "mesos-sim: cannot start a connection thread for {}: {e}",
                self.addr
            );
        }
    }

    fn serve(&self, stream: TcpStream, fault: &AgentFault) {
        let timeout = match fault {
            AgentFault::SlowBody { .. } => SLOW_BODY_IO_TIMEOUT,
            _ => IO_TIMEOUT,
        };
        let Ok(mut conn) = Conn::new(stream, self.shared.tls.as_ref(), timeout) else {
            return;
        };
        let request = match http::read_request(&mut conn) {
            Ok(Some(request)) => request,
            Ok(None) => return send(conn, &Response::text(400), Framing::Length),
            // The client left or stayed silent: nobody to answer.
            Err(_) => return,
        };
        *lock(&self.last_auth) = request.authorization.clone();
        if !self.delay(fault) {
            return;
        }
        if let AgentFault::Raw {
            bytes,
            one_byte_at_a_time,
            endless,
        } = fault
        {
            return self.send_raw(conn, bytes, *one_byte_at_a_time, endless);
        }
        let response = self.answer(&request, fault);
        // Counted before answering so a client that has read the answer sees the count.
        if request.path == self.counted_path {
            self.served.fetch_add(1, Ordering::SeqCst);
        }
        if let AgentFault::SlowBody { bytes, over } = *fault {
            return self.send_slowly(conn, &response, bytes, over);
        }
        let framing = match *fault {
            AgentFault::Truncated => Framing::Truncated,
            AgentFault::Chunked(size) => Framing::Chunked(size),
            AgentFault::UntilClose => Framing::UntilClose,
            _ => Framing::Length,
        };
        send(conn, &response, framing);
    }

    /// Sends `response` padded to `bytes`, in steps spread over `over`.
    fn send_slowly(&self, mut conn: Conn, response: &Response, bytes: usize, over: Duration) {
        let paced = response.write_padded_paced(&mut conn, bytes, over, |pause| {
            !self.shared.wait_for_stop(Some(pause))
        });
        if paced.is_ok() {
            conn.finish();
        }
    }

    /// Writes `bytes` as they are (a byte per write, a millisecond apart, when asked),
    /// then `endless` until a write fails or the cluster stops.
    fn send_raw(&self, mut conn: Conn, bytes: &[u8], one_byte_at_a_time: bool, endless: &[u8]) {
        let step = if one_byte_at_a_time {
            1
        } else {
            bytes.len().max(1)
        };
        for part in bytes.chunks(step) {
            if conn.write_all(part).and_then(|()| conn.flush()).is_err() {
                return;
            }
            if one_byte_at_a_time && self.shared.wait_for_stop(Some(Duration::from_millis(1))) {
                return;
            }
        }
        while !endless.is_empty() && conn.write_all(endless).is_ok() {
            if self.shared.wait_for_stop(Some(Duration::ZERO)) {
                return;
            }
        }
    }

    /// Applies the timing faults; false when the request must get no answer.
    fn delay(&self, fault: &AgentFault) -> bool {
        match fault {
            // The connection stays open, unanswered, until the cluster stops.
            AgentFault::Hang => !self.shared.wait_for_stop(None),
            AgentFault::Slow(delay) => !self.shared.wait_for_stop(Some(*delay)),
            _ => true,
        }
    }

    fn answer(&self, request: &Request, fault: &AgentFault) -> Response {
        match fault {
            AgentFault::Status(status) => Response::text(*status),
            AgentFault::Body(body) => Response::json(200, body.clone()),
            AgentFault::Redirect(location) => Response::redirect(location.clone()),
            AgentFault::Oversized(size) => {
                let mut response = self.authorized_answer(request);
                response.pad_to(*size);
                response
            }
            _ => self.authorized_answer(request),
        }
    }

    fn authorized_answer(&self, request: &Request) -> Response {
        if let Some(token) = &self.shared.auth_token {
            if !http::is_authorized(token, request.authorization.as_deref()) {
                return Response::unauthorized();
            }
        }
        if request.method != "GET" {
            return Response::text(405);
        }
        self.service.respond(request)
    }
}

/// Writes `response` framed as asked, and closes the connection cleanly; a `Truncated`
/// one sends only half the body and the connection is cut.
fn send(mut conn: Conn, response: &Response, framing: Framing) {
    let sent = match framing {
        Framing::Length => response.write_to(&mut conn, response.body.len()),
        Framing::Truncated => response.write_to(&mut conn, response.body.len() / 2),
        Framing::Chunked(size) => response.write_chunked(&mut conn, size),
        Framing::UntilClose => response.write_until_close(&mut conn),
    };
    // A client that hung up early is not the simulator's problem.
    if sent.is_ok() && framing != Framing::Truncated {
        conn.finish();
    }
}
