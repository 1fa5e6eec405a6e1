//! A broker reached at an IPv6 literal (`Ipv6Forwarder`).

use super::*;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;

/// A broker reached at an IPv6 literal: a TCP forwarder from `[::1]` to a broker that
/// listens on 127.0.0.1 (the test nodes do), so the collector's own connection to the
/// broker is made over IPv6. Stops accepting when dropped.
pub struct Ipv6Forwarder {
    port: u16,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Ipv6Forwarder {
    pub fn to(target: &(impl AmqpAddr + ?Sized)) -> Ipv6Forwarder {
        let listener = TcpListener::bind("[::1]:0").expect("bind [::1]:0");
        let port = listener.local_addr().expect("local address").port();
        let target = target.host_port();
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = std::sync::Arc::clone(&stopped);
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let (Ok(client), Ok(server)) = (client, TcpStream::connect(&target)) {
                    forward(client, server);
                }
            }
        });
        Ipv6Forwarder { port, stopped }
    }

    pub fn host_port(&self) -> String {
        format!("[::1]:{}", self.port)
    }
}

impl Drop for Ipv6Forwarder {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        // Wakes the accepting thread so it sees the flag.
        let _ = TcpStream::connect(("::1", self.port));
    }
}

/// Copies bytes both ways between two sockets until either side closes.
pub(super) fn forward(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    for (mut from, mut to) in [(a, b2), (b, a2)] {
        thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
    }
}
