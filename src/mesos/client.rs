//! Everything that talks to Mesos over HTTP: finding the leading master, listing its
//! agents, and fetching one agent's `/monitor/statistics`.
//!
//! One `ureq` agent is shared by every worker thread. Its timeouts are always set (ureq 3
//! has none by default), proxies from the environment are ignored (agents are reached
//! directly), and redirects are followed here rather than by ureq, because ureq drops
//! the `Authorization` header on a redirect and Mesos standbys answer with a
//! protocol-relative `Location`.

use crate::config::redact;
use crate::config::HttpSettings;
use crate::mesos::agents::{parse_agent_list, Agent, AgentList};
use crate::mesos::budget::{BodyBudget, NoGrowth, Reservation};
use crate::mesos::fetch_error::FetchError;
use crate::mesos::plain;
use std::fmt;
use std::io::{BufReader, Read};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;
use ureq::http::{header, StatusCode};

/// Where an agent answers with its statistics (`/monitor/statistics.json` is gone since
/// Mesos 1.8).
const STATISTICS: &str = "/monitor/statistics";
/// How many 307s a master listing may follow before giving up.
const MAX_REDIRECTS: usize = 3;
/// Read buffer of the streamed agent list: large reads, yet a fixed size whatever the
/// list's length.
const LIST_BUFFER_BYTES: usize = 64 * 1024;

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

/// The HTTP client for masters and agents.
pub(crate) struct MesosClient {
    http: ureq::Agent,
    authorization: Option<String>,
    settings: HttpSettings,
    /// What every answer read reserves from while it is held (`--body-budget-bytes`).
    budget: BodyBudget,
    /// The resolver `http` has too, for agents asked over plain HTTP (`plain.rs`).
    resolver: LiteralFirstResolver,
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
            resolver: LiteralFirstResolver::default(),
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
                BodyOrRedirect::Body(body) => return self.read_agent_list(body, base),
                BodyOrRedirect::Redirect(location) => {
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
        let ends = deadline.min(Instant::now() + self.settings.request_timeout);
        let body = match scheme {
            Scheme::Http => AnswerBody::Plain(self.get_plain(&agent.address, STATISTICS, ends)?),
            Scheme::Https => {
                let url = format!("{scheme}://{}{STATISTICS}", agent.address);
                match self.get(&url, ends)? {
                    BodyOrRedirect::Body(body) => AnswerBody::Tls(body),
                    BodyOrRedirect::Redirect(_) => return Err(FetchError::Status(307)),
                }
            }
        };
        Ok(StatisticsAnswer { body, ends })
    }

    /// A `GET` through the small plain-HTTP client (`plain.rs`), answered with a body.
    fn get_plain(
        &self,
        address: &str,
        path: &str,
        ends: Instant,
    ) -> Result<plain::Answer, FetchError> {
        let request = plain::Request {
            address,
            path,
            authorization: self.authorization.as_deref(),
        };
        let addresses = resolve(&self.resolver, self.http.config(), address, ends)?;
        let answer = plain::get(&addresses, &request, self.settings.connect_timeout, ends)?;
        match StatusCode::from_u16(answer.status).map_err(|_| FetchError::Status(answer.status))? {
            status if is_redirect(status) => Err(FetchError::Status(answer.status)),
            status => refused(status).map_or(Ok(answer), Err),
        }
    }

    /// Reserves an answer's share of the body budget: its Content-Length, or a first step
    /// ([`plain::FIRST_STEP`]) when the length is unknown, grown as the body is read
    /// (`read_statistics`). Waits for others to give theirs back, until the request's end
    /// at most.
    pub(crate) fn reserve(&self, answer: &StatisticsAnswer) -> Result<Reservation, FetchError> {
        let limit = self.settings.max_body_bytes;
        let length = match &answer.body {
            AnswerBody::Plain(body) => body.content_length(),
            AnswerBody::Tls(body) => body.content_length(),
        };
        if length.is_some_and(|length| length > limit) {
            return Err(FetchError::TooLarge(limit));
        }
        let first_step = plain::FIRST_STEP.min(limit.saturating_add(1));
        self.budget
            .reserve(length.unwrap_or(first_step), answer.ends)
            .ok_or(FetchError::Timeout)
    }

    /// Reads an agent's whole answer, up to `--max-body-bytes`, into its reservation.
    pub(crate) fn read_statistics(
        &self,
        answer: StatisticsAnswer,
        mut reservation: Reservation,
    ) -> Result<Body, FetchError> {
        let limit = self.settings.max_body_bytes;
        let mut bytes = Vec::new();
        let ends = answer.ends;
        let mut grow = |bytes: u64| reservation.grow_to(bytes, ends).map_err(no_growth);
        match answer.body {
            AnswerBody::Plain(body) => body.read_body(limit, &mut bytes, &mut grow)?,
            AnswerBody::Tls(mut body) => {
                let length = body.content_length();
                let mut reader = body.with_config().limit(limit).reader();
                let tls_error = |e| classify(ureq::Error::from(e));
                if let Some(length) = length {
                    // Sized from Content-Length up front: growing a Vec through a 30 KB
                    // answer costs a copy per doubling, for every agent of every pass.
                    bytes.reserve_exact(usize::try_from(length.min(limit)).unwrap_or(0));
                    reader.read_to_end(&mut bytes).map_err(tls_error)?;
                } else {
                    plain::read_until_close(&mut reader, limit, &mut bytes, &mut grow, tls_error)?;
                }
            }
        }
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

    fn get(&self, url: &str, deadline: Instant) -> Result<BodyOrRedirect, FetchError> {
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(self.settings.request_timeout);
        if budget.is_zero() {
            return Err(FetchError::Timeout);
        }
        let mut request = self.http.get(url);
        if budget < self.settings.request_timeout {
            // Near the deadline only: a request's own configuration is a copy of the
            // agent's, which every agent of every pass would otherwise pay for.
            request = request.config().timeout_global(Some(budget)).build();
        }
        if let Some(auth) = &self.authorization {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let response = request.call().map_err(classify)?;
        let status = response.status();
        if is_redirect(status) {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| FetchError::BadRedirect("no Location header".into()))?;
            return Ok(BodyOrRedirect::Redirect(location.to_string()));
        }
        refused(status).map_or_else(|| Ok(BodyOrRedirect::Body(response.into_body())), Err)
    }
}

/// The redirects a master or agent may answer with.
fn is_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TEMPORARY_REDIRECT | StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND
    )
}

/// Why an answer with this status (not a redirect) has no usable body, if it has none.
fn refused(status: StatusCode) -> Option<FetchError> {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Some(FetchError::Unauthorized(status.as_u16()))
        }
        StatusCode::SERVICE_UNAVAILABLE => Some(FetchError::NoLeader),
        s if !s.is_success() => Some(FetchError::Status(s.as_u16())),
        _ => None,
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

/// The addresses of `host:port` by the resolver ureq is given, so agents asked over plain
/// HTTP are found exactly as those asked through ureq: an IP literal at once, a name
/// looked up by `ends` at the latest.
fn resolve(
    resolver: &LiteralFirstResolver,
    config: &ureq::config::Config,
    address: &str,
    ends: Instant,
) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, FetchError> {
    use ureq::unversioned::resolver::Resolver;
    let uri: ureq::http::Uri = format!("http://{address}/")
        .parse()
        .map_err(|e| FetchError::Connection(format!("not an address: {e}")))?;
    let timeout = ureq::unversioned::transport::NextTimeout {
        after: plain::left_until(ends)?.into(),
        reason: ureq::Timeout::Resolve,
        per_read: None,
        per_write: None,
    };
    resolver.resolve(&uri, config, timeout).map_err(classify)
}

/// A successful answer's body, still to be read, or where a redirect points.
enum BodyOrRedirect {
    Body(ureq::Body),
    Redirect(String),
}

/// An agent's answer whose headers arrived, its body still to be read by `ends`.
pub(crate) struct StatisticsAnswer {
    body: AnswerBody,
    ends: Instant,
}

/// An agent's answer over plain HTTP (`plain.rs`) or over TLS (ureq).
enum AnswerBody {
    Plain(plain::Answer),
    Tls(ureq::Body),
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

/// A body's share of the budget that could not grow: waited for in vain, or held by
/// answers that all wait to grow (`budget.rs`).
fn no_growth(why: NoGrowth) -> FetchError {
    match why {
        NoGrowth::Timeout => FetchError::Timeout,
        NoGrowth::HeldByGrowing => FetchError::BudgetHeld,
    }
}

/// Maps ureq's errors to the reasons operators act on.
fn classify(error: ureq::Error) -> FetchError {
    match error {
        ureq::Error::Timeout(_) => FetchError::Timeout,
        ureq::Error::BodyExceedsLimit(limit) => FetchError::TooLarge(limit),
        ureq::Error::Io(e) => FetchError::from_io(e),
        ureq::Error::Protocol(e) => FetchError::Truncated(e.to_string()),
        ureq::Error::ConnectionFailed => FetchError::Refused,
        other => FetchError::Connection(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_given_by_name_or_literal_resolve() {
        let (resolver, config) = (
            LiteralFirstResolver::default(),
            ureq::config::Config::default(),
        );
        let soon = Instant::now() + std::time::Duration::from_secs(5);
        let literal = resolve(&resolver, &config, "[::1]:5051", soon).map(|a| a.to_vec());
        assert_eq!(
            literal.ok(),
            Some(vec!["[::1]:5051".parse().expect("literal")])
        );
        let named = resolve(&resolver, &config, "localhost:5051", soon)
            .map(|a| a.to_vec())
            .unwrap_or_default();
        assert!(!named.is_empty());
        assert!(
            named
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 5051),
            "{named:?}"
        );
        let late = resolve(&resolver, &config, "10.0.0.1:5051", Instant::now());
        assert!(
            matches!(late, Err(FetchError::Timeout)),
            "no time left: {late:?}"
        );
        let bad = resolve(&resolver, &config, "a b:5051", soon);
        assert!(matches!(bad, Err(FetchError::Connection(_))), "{bad:?}");
    }

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
