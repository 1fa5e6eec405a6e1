//! A Prometheus Pushgateway private to one test, and a listener that never answers (a hung
//! one).

use super::*;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

/// A `prometheus-pushgateway` (Debian package; `scripts/services ensure` installs it) private
/// to one test: a free loopback port, a persistence file in a folder of its own. Killed and
/// its folder removed on drop.
pub struct Pushgateway {
    child: Child,
    port: u16,
    dir: PathBuf,
    /// `Basic ...`, for a Pushgateway that wants it.
    authorization: Option<String>,
}

/// A user of a Pushgateway started with [`Pushgateway::with_basic_auth`], and its password.
pub const PUSHGATEWAY_USER: (&str, &str) = ("asgard", "Pu5h-s3cret");
/// The bcrypt hash of [`PUSHGATEWAY_USER`]'s password, as the Pushgateway's web
/// configuration wants it (cost 4, the least, to keep each request cheap), made with
/// `python3 -c "import crypt; print(crypt.crypt('Pu5h-s3cret',
/// crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"`.
pub(super) const PUSHGATEWAY_PASSWORD_BCRYPT: &str =
    "$2b$04$1Mp0a0seS66jVnh77Ijl6uoXa4HfOo89BLBKlLJySaWIqOGwzjwlK";

impl Pushgateway {
    /// Starts one and waits until it answers `/-/ready`.
    pub fn start() -> Pushgateway {
        Pushgateway::start_with(None)
    }

    /// One that wants HTTP basic authentication as [`PUSHGATEWAY_USER`] on every request.
    pub fn with_basic_auth() -> Pushgateway {
        Pushgateway::start_with(Some(PUSHGATEWAY_USER))
    }

    fn start_with(user: Option<(&str, &str)>) -> Pushgateway {
        use base64::Engine;
        let dir = std::env::temp_dir().join(unique_name("asgard-pushgateway"));
        std::fs::create_dir_all(&dir).expect("create the Pushgateway's folder");
        let web_config = dir.join("web.yml");
        let authorization = user.map(|(user, password)| {
            let users = format!("basic_auth_users:\n  {user}: {PUSHGATEWAY_PASSWORD_BCRYPT}\n");
            std::fs::write(&web_config, users).expect("write the web configuration");
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {token}")
        });
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("prometheus-pushgateway")
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!(
                    "--persistence.file={}",
                    dir.join("pushgateway.data").display()
                ))
                .args(
                    authorization
                        .iter()
                        .map(|_| format!("--web.config.file={}", web_config.display())),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "prometheus-pushgateway cannot run ({e}): install the Debian package \
                         prometheus-pushgateway (`bash scripts/services ensure` does it as root)"
                    )
                });
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                if http_get(port, "/-/ready", authorization.as_deref()).is_some() {
                    return Pushgateway {
                        child,
                        port,
                        dir,
                        authorization,
                    };
                }
                thread::sleep(Duration::from_millis(50));
            }
            // Lost a race for the port, or a slow start: try another port.
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("prometheus-pushgateway did not come up after 5 attempts");
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it serves on `/metrics`: every group pushed to it, in the text format.
    pub fn metrics(&self) -> String {
        http_get(self.port, "/metrics", self.authorization.as_deref())
            .unwrap_or_else(|| panic!("the Pushgateway on port {} does not answer", self.port))
    }
}

/// The body of a 2xx answer to `GET http://127.0.0.1:PORT/PATH` (with this
/// `Authorization`); None on anything else.
pub(super) fn http_get(port: u16, path: &str, authorization: Option<&str>) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .build()
        .into();
    let request = agent.get(format!("http://127.0.0.1:{port}{path}"));
    let request = match authorization {
        Some(value) => request.header("Authorization", value),
        None => request,
    };
    let mut response = request.call().ok()?;
    response.body_mut().read_to_string().ok()
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback listener that accepts connections and never answers nor closes them: a
/// server that hangs. Stops accepting when dropped.
pub struct SilentListener {
    port: u16,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentListener {
    pub fn start() -> SilentListener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = std::sync::Arc::clone(&stopped);
        thread::spawn(move || {
            let mut held = Vec::new();
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                held.extend(client.ok());
            }
        });
        SilentListener { port, stopped }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        // Wakes the accepting thread so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
