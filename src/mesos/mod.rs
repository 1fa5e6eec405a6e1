//! Everything that talks to Mesos over HTTP: finding the leading master, listing its
//! agents, and fetching one agent's `/monitor/statistics`.
//!
//! One `ureq` agent is shared by every worker thread. Its timeouts are always set (ureq 3
//! has none by default), proxies from the environment are ignored (agents are reached
//! directly), and redirects are followed here rather than by ureq, because ureq drops
//! the `Authorization` header on a redirect and Mesos standbys answer with a
//! protocol-relative `Location`.

use crate::config::{fnv1a, HttpSettings, Shard};
use crate::pass::budget::{BodyBudget, Reservation};
use crate::redact;
use crate::stats::json::{Object, Scalar};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::io::{BufReader, Read};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;
use ureq::http::{header, StatusCode};

/// How many 307s a master listing may follow before giving up.
const MAX_REDIRECTS: usize = 3;
/// Read buffer of the streamed agent list: large reads, yet a fixed size whatever the
/// list's length.
const LIST_BUFFER_BYTES: usize = 64 * 1024;

/// An active agent: its id (for sharding) and its `hostname:port` (the document's host;
/// an IPv6 literal hostname in brackets, `[::1]:5051`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Agent {
    pub(crate) id: String,
    pub(crate) address: String,
}

/// The agents of the leading master, and which master answered.
#[derive(Debug)]
pub(crate) struct AgentList {
    pub(crate) leader: String,
    pub(crate) agents: Vec<Agent>,
    /// Agents the master listed as inactive, which are not collected.
    pub(crate) inactive: usize,
    /// Entries that name no agent that can be reached; skipped, not collected.
    pub(crate) unusable: Unusable,
}

/// How many unusable entries of the agent list are named one by one. Past them an entry
/// costs only what the shard rule needs (nothing without an id, its id's hash with one),
/// so a list of millions of bad entries is not millions of items, nor of log lines.
pub(crate) const UNUSABLE_NAMED: usize = 10;

/// The entries of the agent list that name no agent that can be reached.
#[derive(Debug, Default)]
pub(crate) struct Unusable {
    /// The first [`UNUSABLE_NAMED`] of them, in the master's order.
    first: Vec<UnusableAgent>,
    /// How many after those had no string id.
    later_without_id: usize,
    /// The shard hash of the id of each other one after those.
    later_id_hashes: Vec<u64>,
}

impl Unusable {
    fn push(&mut self, entry: UnusableAgent) {
        if self.first.len() < UNUSABLE_NAMED {
            self.first.push(entry);
        } else if let Some(id) = &entry.id {
            self.later_id_hashes.push(fnv1a(id.as_bytes()));
        } else {
            self.later_without_id += 1;
        }
    }

    /// How many entries of the whole list are unusable.
    pub(crate) fn len(&self) -> usize {
        self.first.len() + self.later_without_id + self.later_id_hashes.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many are of this shard (all without one), and those of them among the named
    /// ones. An entry without an id belongs to the shard of the empty id, so exactly one
    /// shard has it.
    pub(crate) fn of_shard(&self, shard: Option<Shard>) -> (usize, Vec<&UnusableAgent>) {
        let holds = |hash: u64| shard.is_none_or(|shard| shard.holds_hash(hash));
        let named: Vec<&UnusableAgent> = self
            .first
            .iter()
            .filter(|u| holds(fnv1a(u.id.as_deref().unwrap_or("").as_bytes())))
            .collect();
        let without_id = if holds(fnv1a(b"")) {
            self.later_without_id
        } else {
            0
        };
        let with_id = self.later_id_hashes.iter().filter(|&&h| holds(h)).count();
        (named.len() + without_id + with_id, named)
    }
}

/// An entry of the agent list that cannot be collected, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnusableAgent {
    /// Its position in the master's list.
    pub(crate) position: usize,
    /// Its `id`, when it has a string one.
    pub(crate) id: Option<String>,
    pub(crate) why: &'static str,
}

impl fmt::Display for UnusableAgent {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let id = self.id.as_deref().unwrap_or("without an id");
        write!(
            f,
            "agent list entry {} ({id}) skipped: {}",
            self.position, self.why
        )
    }
}

/// Every master failed; each with its reason, in the order tried.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub(crate) struct NoMaster {
    pub(crate) attempts: Vec<(String, FetchError)>,
}

impl NoMaster {
    fn describe(&self) -> String {
        // A master that sent a list that could not be read did answer: saying otherwise
        // sends the operator after the network instead of the master's answer.
        let head = if self
            .attempts
            .iter()
            .any(|(_, why)| why.is_unreadable_list())
        {
            "no Mesos master gave a readable agent list"
        } else {
            "no Mesos master answered"
        };
        let parts: Vec<String> = self
            .attempts
            .iter()
            .map(|(url, why)| format!("{url}: {why}"))
            .collect();
        format!("{head}: {}", parts.join("; "))
    }
}

/// Why one HTTP request to a master or agent failed. `kind` names it for the summary.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("connection refused")]
    Refused,
    #[error("timed out")]
    Timeout,
    #[error("authentication failed (HTTP {0}): check STATS_COLLECTOR_MESOS_PRINCIPAL/_SECRET")]
    Unauthorized(u16),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("no leading master (HTTP 503)")]
    NoLeader,
    #[error("answer larger than {0} bytes")]
    TooLarge(u64),
    #[error("answered an unreadable agent list: {0}")]
    UnreadableList(String),
    #[error("answered an agent list larger than {0} bytes (see --max-agent-list-bytes)")]
    ListTooLarge(u64),
    #[error("answer cut short: {0}")]
    Truncated(String),
    #[error("bad redirect: {0}")]
    BadRedirect(String),
    #[error("{0}")]
    Connection(String),
}

impl FetchError {
    /// A short stable name for counting failures by reason.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            FetchError::Refused => "refused",
            FetchError::Timeout => "timeout",
            FetchError::Unauthorized(_) => "unauthorized",
            FetchError::Status(_) | FetchError::NoLeader => "http-status",
            FetchError::TooLarge(_) | FetchError::ListTooLarge(_) => "too-large",
            FetchError::Truncated(_) => "truncated",
            FetchError::BadRedirect(_) | FetchError::UnreadableList(_) => "bad-answer",
            FetchError::Connection(_) => "connection",
        }
    }

    /// The master answered, but with an agent list that could not be used.
    fn is_unreadable_list(&self) -> bool {
        matches!(
            self,
            FetchError::UnreadableList(_) | FetchError::ListTooLarge(_)
        )
    }
}

/// The HTTP client for masters and agents.
pub(crate) struct MesosClient {
    http: ureq::Agent,
    authorization: Option<String>,
    settings: HttpSettings,
    /// What every answer read reserves from while it is held (`--body-budget-bytes`).
    budget: BodyBudget,
}

impl MesosClient {
    pub(crate) fn new(settings: &HttpSettings) -> anyhow::Result<MesosClient> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &settings.ca_file {
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(read_ca_file(
                path,
            )?)));
        }
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_global(Some(settings.request_timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            .user_agent(concat!("asgard-stats/", env!("CARGO_PKG_VERSION")))
            // Agents are many distinct hosts asked once a pass: pooling buys nothing.
            .max_idle_connections(0)
            // Every agent is a new connection, and ureq zeroes both buffers for each one:
            // 128 KiB apiece by default, far more than a request or a read needs.
            .input_buffer_size(16 * 1024)
            .output_buffer_size(4 * 1024)
            .tls_config(tls.build())
            .build();
        let authorization = settings
            .credentials
            .as_ref()
            .map(|c| basic_authorization(&c.principal, c.secret.expose()));
        let http = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            LiteralFirstResolver::default(),
        );
        Ok(MesosClient {
            http,
            authorization,
            settings: settings.clone(),
            budget: BodyBudget::new(settings.body_budget_bytes),
        })
    }

    /// Asks each master in turn for its agents, following standbys to the leader.
    pub(crate) fn list_agents(&self, masters: &[String]) -> Result<AgentList, NoMaster> {
        let mut attempts = Vec::new();
        for master in masters {
            match self.list_from(master) {
                Ok(list) => return Ok(list),
                Err(why) => {
                    log::warn!(master = master.as_str(), reason = why.to_string().as_str(); "master {master} failed: {why}");
                    attempts.push((master.clone(), why));
                }
            }
        }
        Err(NoMaster { attempts })
    }

    fn list_from(&self, master: &str) -> Result<AgentList, FetchError> {
        let mut base = master.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let deadline = Instant::now() + self.settings.request_timeout;
            match self.get(&format!("{base}/master/slaves"), deadline)? {
                Answer::Body(body) => return self.read_agent_list(body, base),
                Answer::Redirect(location) => {
                    base = leader_of(&base, &location)?;
                    log::info!("{master} is not leading; following it to {base}");
                }
            }
        }
        Err(FetchError::BadRedirect(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// Asks an agent for its statistics, up to the answer's headers; the request, its
    /// body included, ends by `deadline` at the latest.
    pub(crate) fn request_statistics(
        &self,
        scheme: Scheme,
        agent: &Agent,
        deadline: Instant,
    ) -> Result<StatisticsAnswer, FetchError> {
        let url = format!("{scheme}://{}/monitor/statistics", agent.address);
        let ends = deadline.min(Instant::now() + self.settings.request_timeout);
        match self.get(&url, ends)? {
            Answer::Body(body) => Ok(StatisticsAnswer { body, ends }),
            Answer::Redirect(_) => Err(FetchError::Status(307)),
        }
    }

    /// Reserves an answer's share of the body budget: its Content-Length, or
    /// `--max-body-bytes` when the length is unknown (what is not used is given back once
    /// read). Waits for others to give theirs back, until the request's end at most.
    pub(crate) fn reserve(&self, answer: &StatisticsAnswer) -> Result<Reservation, FetchError> {
        let limit = self.settings.max_body_bytes;
        let length = answer.body.content_length();
        if length.is_some_and(|length| length > limit) {
            return Err(FetchError::TooLarge(limit));
        }
        self.budget
            .reserve(length.unwrap_or(limit), answer.ends)
            .ok_or(FetchError::Timeout)
    }

    /// Reads an agent's whole answer, up to `--max-body-bytes`, into its reservation.
    pub(crate) fn read_statistics(
        &self,
        answer: StatisticsAnswer,
        mut reservation: Reservation,
    ) -> Result<Body, FetchError> {
        let limit = self.settings.max_body_bytes;
        let mut body = answer.body;
        // Sized from Content-Length up front: growing a Vec through a 30 KB answer costs a
        // copy per doubling, for every agent of every pass.
        let length = body.content_length().unwrap_or(0).min(limit);
        let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
        body.with_config()
            .limit(limit)
            .reader()
            .read_to_end(&mut bytes)
            .map_err(|e| classify(ureq::Error::from(e)))?;
        reservation.shrink_to(bytes.capacity() as u64);
        Ok(Body { bytes, reservation })
    }

    /// Reads a master's agent list as it arrives, keeping only what each agent needs, up
    /// to `--max-agent-list-bytes`: a list of 50,000 agents is ~85 MB of JSON, of which a
    /// pass keeps a few MB.
    fn read_agent_list(&self, body: ureq::Body, leader: String) -> Result<AgentList, FetchError> {
        let limit = self.settings.max_agent_list_bytes;
        let reader = body.into_with_config().limit(limit).reader();
        parse_agent_list(BufReader::with_capacity(LIST_BUFFER_BYTES, reader), leader)
            .map_err(list_error)
    }

    fn get(&self, url: &str, deadline: Instant) -> Result<Answer, FetchError> {
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(self.settings.request_timeout);
        if budget.is_zero() {
            return Err(FetchError::Timeout);
        }
        let mut request = self
            .http
            .get(url)
            .config()
            .timeout_global(Some(budget))
            .build();
        if let Some(auth) = &self.authorization {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let response = request.call().map_err(classify)?;
        let status = response.status();
        match status {
            StatusCode::TEMPORARY_REDIRECT | StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| FetchError::BadRedirect("no Location header".into()))?;
                Ok(Answer::Redirect(location.to_string()))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(FetchError::Unauthorized(status.as_u16()))
            }
            StatusCode::SERVICE_UNAVAILABLE => Err(FetchError::NoLeader),
            s if !s.is_success() => Err(FetchError::Status(s.as_u16())),
            _ => Ok(Answer::Body(response.into_body())),
        }
    }
}

/// The scheme agents are reached with: the same as the leading master's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub(crate) fn of(url: &str) -> Scheme {
        if url.starts_with("https://") {
            Scheme::Https
        } else {
            Scheme::Http
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// Resolves hosts that are IP addresses, as Mesos lists most agents, on the spot.
///
/// With a timeout set, ureq's default resolver spawns a thread for every lookup, even of
/// an IP address: one thread per agent per pass, which cost more CPU than parsing the
/// agent's answer. Names still go through the default resolver and its timeout.
#[derive(Debug, Default)]
struct LiteralFirstResolver(ureq::unversioned::resolver::DefaultResolver);

impl ureq::unversioned::resolver::Resolver for LiteralFirstResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let literal = uri.authority().and_then(|authority| {
            let ip: std::net::IpAddr = authority.host().trim_matches(['[', ']']).parse().ok()?;
            let default_port = if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            };
            Some(std::net::SocketAddr::new(
                ip,
                authority.port_u16().unwrap_or(default_port),
            ))
        });
        match literal {
            Some(address) => {
                let mut addresses = self.0.empty();
                addresses.push(address);
                Ok(addresses)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
}

/// A successful answer's body, still to be read, or where a redirect points.
enum Answer {
    Body(ureq::Body),
    Redirect(String),
}

/// An agent's answer whose headers arrived, its body still to be read by `ends`.
pub(crate) struct StatisticsAnswer {
    body: ureq::Body,
    ends: Instant,
}

/// An answer's bytes, holding their share of the body budget until dropped.
pub(crate) struct Body {
    bytes: Vec<u8>,
    reservation: Reservation,
}

impl Body {
    /// Frees the bytes but keeps their reservation, for what was read out of them.
    pub(crate) fn into_reservation(self) -> Reservation {
        self.reservation
    }
}

impl Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

fn read_ca_file(path: &std::path::Path) -> anyhow::Result<Vec<ureq::tls::Certificate<'static>>> {
    use anyhow::Context;
    let pem = std::fs::read(path).with_context(|| format!("reading CA file {}", path.display()))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading CA file {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "CA file {} holds no certificate",
        path.display()
    );
    Ok(certs)
}

pub(crate) fn basic_authorization(principal: &str, secret: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{principal}:{secret}"));
    format!("Basic {token}")
}

/// The leader a standby's `Location` names (absolute, protocol-relative `//host:port/…`,
/// or a path on the master asked): its host and port only, under the scheme of the URL
/// asked, which is the one the operator configured. The path stays ours, and a Location
/// that changes the scheme is refused, so credentials never leave in clear text.
fn leader_of(asked: &str, location: &str) -> Result<String, FetchError> {
    let scheme = Scheme::of(asked);
    let shown = redact::url(location);
    let rest = if let Some(rest) = location.strip_prefix("//") {
        rest
    } else if let Some((theirs, rest)) = location.split_once("://") {
        if !theirs.eq_ignore_ascii_case(&scheme.to_string()) {
            return Err(FetchError::BadRedirect(format!(
                "Location {shown} changes the scheme from {scheme}: refused"
            )));
        }
        rest
    } else if location.starts_with('/') {
        return Ok(asked.to_string());
    } else {
        return Err(FetchError::BadRedirect(format!(
            "unusable Location {shown}"
        )));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // User info in a Location is the standby's, never a reason to send ours elsewhere.
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if redact::url(authority) == redact::UNREADABLE {
        return Err(FetchError::BadRedirect(format!(
            "unusable Location {shown}"
        )));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// Why an agent list could not be read. A list cut short, too large or not the JSON
/// expected was still an answer: the master is not said to be silent.
fn list_error(error: serde_json::Error) -> FetchError {
    if !error.is_io() {
        return FetchError::UnreadableList(error.to_string());
    }
    match classify(ureq::Error::from(std::io::Error::from(error))) {
        FetchError::TooLarge(limit) => FetchError::ListTooLarge(limit),
        FetchError::Truncated(why) => FetchError::UnreadableList(format!("cut short: {why}")),
        other => other,
    }
}

/// Reads a `/master/slaves` answer as a stream: each entry is reduced to an [`Agent`] (or
/// counted as inactive, or kept as unusable) as soon as it is read, and every other field
/// of the answer is skipped without being kept.
fn parse_agent_list(reader: impl Read, leader: String) -> Result<AgentList, serde_json::Error> {
    let Listing {
        agents,
        inactive,
        unusable,
    } = serde_json::from_reader::<_, Answered>(reader)?.0;
    Ok(AgentList {
        leader,
        agents,
        inactive,
        unusable,
    })
}

/// The entries of a listing, each reduced to what a pass keeps, in the master's order.
#[derive(Default)]
struct Listing {
    agents: Vec<Agent>,
    inactive: usize,
    unusable: Unusable,
}

/// The whole answer: an object whose `slaves` array is the listing.
struct Answered(Listing);

impl<'de> Deserialize<'de> for Answered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AnswerVisitor)
    }
}

struct AnswerVisitor;

impl<'de> Visitor<'de> for AnswerVisitor {
    type Value = Answered;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with a slaves array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Answered, A::Error> {
        let mut listing = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "slaves" && listing.is_none() {
                listing = Some(map.next_value::<Slaves>()?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        listing
            .map(Answered)
            .ok_or_else(|| serde::de::Error::missing_field("slaves"))
    }
}

/// The `slaves` array, read entry by entry.
struct Slaves(Listing);

impl<'de> Deserialize<'de> for Slaves {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(SlavesVisitor)
    }
}

struct SlavesVisitor;

impl<'de> Visitor<'de> for SlavesVisitor {
    type Value = Slaves;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of agents")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Slaves, A::Error> {
        let mut listing = Listing::default();
        let mut position = 0;
        while let Some(entry) = seq.next_element::<Object<SlaveEntry>>()? {
            match listed_agent(entry) {
                Ok(Some(agent)) => listing.agents.push(agent),
                Ok(None) => listing.inactive += 1,
                Err((id, why)) => listing.unusable.push(UnusableAgent { position, id, why }),
            }
            position += 1;
        }
        Ok(Slaves(listing))
    }
}

/// The fields of an agent entry that a pass uses; every other one is skipped unread.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SlaveEntry {
    id: Scalar,
    hostname: Scalar,
    port: Scalar,
    pid: Scalar,
    active: Scalar,
}

/// An entry's agent; None when it is listed inactive (old masters send no `active`: such
/// an agent is active); Err with the entry's id and why when it cannot be reached.
fn listed_agent(
    entry: Object<SlaveEntry>,
) -> Result<Option<Agent>, (Option<String>, &'static str)> {
    let Object::Is(entry) = entry else {
        return Err((None, "not an object"));
    };
    let id = match entry.id {
        Scalar::Text(id) if !id.is_empty() => id,
        _ => return Err((None, "no id")),
    };
    if entry.active == Scalar::Bool(false) {
        return Ok(None);
    }
    let Some(hostname) = entry.hostname.text().filter(|h| !h.is_empty()) else {
        return Err((Some(id), "no hostname"));
    };
    let port = match entry.port {
        Scalar::Unsigned(port) => u16::try_from(port).ok().filter(|&p| p > 0),
        _ => None,
    };
    let Some(port) = port.or_else(|| entry.pid.text().and_then(port_of_pid)) else {
        return Err((Some(id), "no port, and none in its pid"));
    };
    Ok(Some(Agent {
        address: host_port(hostname, port),
        id,
    }))
}

/// The port of a libprocess pid, `slave(1)@10.0.0.7:5051` or `slave(1)@[2001:db8::1]:5051`.
fn port_of_pid(pid: &str) -> Option<u16> {
    let (_, address) = pid.rsplit_once('@')?;
    let (_, port) = address.rsplit_once(':')?;
    port.parse().ok().filter(|&p| p > 0)
}

/// `host:port` for a URL and the document: an IPv6 literal goes in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Maps ureq's errors to the reasons operators act on.
fn classify(error: ureq::Error) -> FetchError {
    match error {
        ureq::Error::Timeout(_) => FetchError::Timeout,
        ureq::Error::BodyExceedsLimit(limit) => FetchError::TooLarge(limit),
        ureq::Error::Io(e) => match e.kind() {
            std::io::ErrorKind::ConnectionRefused => FetchError::Refused,
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => FetchError::Timeout,
            std::io::ErrorKind::UnexpectedEof => FetchError::Truncated(e.to_string()),
            _ => FetchError::Connection(e.to_string()),
        },
        ureq::Error::Protocol(e) => FetchError::Truncated(e.to_string()),
        ureq::Error::ConnectionFailed => FetchError::Refused,
        other => FetchError::Connection(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_names_a_leader_by_host_and_port_only() {
        let asked = "http://10.0.0.1:5050";
        let leader = |location| leader_of(asked, location).map_err(|e| e.to_string());
        assert_eq!(
            leader("//10.0.0.2:5050/master/slaves"),
            Ok("http://10.0.0.2:5050".into())
        );
        assert_eq!(
            leader_of("https://m:1", "//l:2/master/slaves").expect("ok"),
            "https://l:2"
        );
        assert_eq!(leader("/master/slaves"), Ok(asked.into()));
        assert_eq!(leader("http://x/y?z"), Ok("http://x".into()));
        assert_eq!(leader("HTTP://u:pw@[::1]:7/"), Ok("http://[::1]:7".into()));
        assert!(leader("nonsense").is_err());
        assert!(leader("//").is_err());
        assert!(leader("http://x y/").is_err());
        let downgrade = leader_of("https://m:1", "http://u:pw@other/").expect_err("refused");
        let why = downgrade.to_string();
        assert!(
            why.contains("changes the scheme from https") && !why.contains("pw"),
            "{why}"
        );
        assert!(
            leader("https://other/").is_err(),
            "no change of scheme either way"
        );
    }

    #[test]
    fn the_basic_header_is_base64_of_principal_and_secret() {
        assert_eq!(
            basic_authorization("ops", "s3cret"),
            "Basic b3BzOnMzY3JldA=="
        );
    }

    fn list(body: &str) -> AgentList {
        parse_agent_list(body.as_bytes(), "http://m:5050".into()).expect("parses")
    }

    fn addresses(list: &AgentList) -> Vec<&str> {
        list.agents.iter().map(|a| a.address.as_str()).collect()
    }

    #[test]
    fn agent_list_skips_inactive_agents() {
        let list = list(
            r#"{"slaves":[
            {"id":"S0","hostname":"10.0.111.32","port":5051,"active":true,"pid":"x"},
            {"id":"S1","hostname":"10.0.111.33","port":5051,"active":false},
            {"id":"S2","hostname":"h","port":5052}],"recovered_slaves":[{"id":"S9"}]}"#,
        );
        assert_eq!(addresses(&list), ["10.0.111.32:5051", "h:5052"]);
        assert_eq!(list.inactive, 1);
        assert!(list.unusable.is_empty());
        for bad in [
            "{}",
            "<html>",
            r#"{"slaves": 3}"#,
            "[]",
            r#"{"slaves":[{"id":"S0"}"#,
        ] {
            assert!(
                parse_agent_list(bad.as_bytes(), String::new()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn old_masters_give_the_port_only_in_the_pid() {
        let list = list(
            r#"{"slaves":[
            {"id":"S0","hostname":"agent-7.example.com","pid":"slave(1)@10.0.0.7:5051"},
            {"id":"S1","hostname":"2001:db8::7","pid":"slave(1)@[2001:db8::7]:5052"},
            {"id":"S2","hostname":"::1","port":5053,"pid":"slave(1)@[::1]:5053"},
            {"id":"S3","hostname":"10.0.0.9","port":0,"pid":"slave(1)@10.0.0.9:5054"}]}"#,
        );
        assert_eq!(
            addresses(&list),
            [
                "agent-7.example.com:5051",
                "[2001:db8::7]:5052",
                "[::1]:5053",
                "10.0.0.9:5054"
            ]
        );
        assert_eq!(list.agents[1].id, "S1");
    }

    #[test]
    fn unusable_entries_are_skipped_and_named_never_the_whole_list() {
        let list = list(
            r#"{"slaves":[3, "x", null, [1],
            {"hostname":"h","port":1},
            {"id":"S5","port":5051},
            {"id":"S6","hostname":"","port":5051},
            {"id":"S7","hostname":"h"},
            {"id":"S8","hostname":"h","port":70000,"pid":"slave(1)@h"},
            {"id":"S9","hostname":"h","port":"5051","pid":7},
            {"id":"S10","hostname":"h","port":5051,"active":"yes","extra":{"a":[1,{"b":2}]}}]}"#,
        );
        assert_eq!(addresses(&list), ["h:5051"]);
        let why: Vec<(usize, Option<&str>, &str)> = list
            .unusable
            .first
            .iter()
            .map(|u| (u.position, u.id.as_deref(), u.why))
            .collect();
        assert_eq!(
            why,
            [
                (0, None, "not an object"),
                (1, None, "not an object"),
                (2, None, "not an object"),
                (3, None, "not an object"),
                (4, None, "no id"),
                (5, Some("S5"), "no hostname"),
                (6, Some("S6"), "no hostname"),
                (7, Some("S7"), "no port, and none in its pid"),
                (8, Some("S8"), "no port, and none in its pid"),
                (9, Some("S9"), "no port, and none in its pid"),
            ]
        );
        assert_eq!(
            list.unusable.first[7].to_string(),
            "agent list entry 7 (S7) skipped: no port, and none in its pid"
        );
    }

    #[test]
    fn past_the_first_unusable_entries_each_is_only_counted_in_its_shard() {
        let mut entries = vec!["0".to_string(); 1000];
        entries.extend((0..100).map(|i| format!(r#"{{"id":"bad-{i}"}}"#)));
        let list = list(&format!(r#"{{"slaves":[{}]}}"#, entries.join(",")));
        assert_eq!(list.unusable.len(), 1100);
        let (all, named) = list.unusable.of_shard(None);
        assert_eq!((all, named.len()), (1100, UNUSABLE_NAMED));
        let shards = [1, 2, 3].map(|index| Shard { index, count: 3 });
        let counts = shards.map(|shard| list.unusable.of_shard(Some(shard)).0);
        assert_eq!(counts.iter().sum::<usize>(), 1100, "{counts:?}");
        let empty_id = shards.map(|shard| shard.holds(""));
        for (count, has_empty) in counts.iter().zip(empty_id) {
            let with_ids = if has_empty { count - 1000 } else { *count };
            assert!(with_ids < 100, "ids spread over shards: {counts:?}");
        }
    }

    #[test]
    fn pids_and_hosts() {
        assert_eq!(port_of_pid("slave(1)@10.0.0.7:5051"), Some(5051));
        assert_eq!(port_of_pid("slave(1)@[2001:db8::1]:5051"), Some(5051));
        assert_eq!(port_of_pid("slave(1)@10.0.0.7"), None);
        assert_eq!(port_of_pid("slave(1)@10.0.0.7:0"), None);
        assert_eq!(port_of_pid("10.0.0.7:5051"), None);
        assert_eq!(host_port("::1", 5051), "[::1]:5051");
        assert_eq!(host_port("[::1]", 5051), "[::1]:5051");
        assert_eq!(host_port("10.0.0.1", 5051), "10.0.0.1:5051");
    }

    #[test]
    fn a_master_that_answered_badly_is_not_said_to_be_silent() {
        let silent = NoMaster {
            attempts: vec![("http://a".into(), FetchError::Refused)],
        };
        assert_eq!(
            silent.to_string(),
            "no Mesos master answered: http://a: connection refused"
        );
        let unreadable = NoMaster {
            attempts: vec![
                ("http://a".into(), FetchError::Refused),
                ("http://b".into(), FetchError::UnreadableList("x".into())),
            ],
        };
        assert_eq!(
            unreadable.to_string(),
            "no Mesos master gave a readable agent list: http://a: connection refused; http://b: answered an unreadable agent list: x"
        );
    }
}
