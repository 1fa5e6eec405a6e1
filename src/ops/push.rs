//! The Pushgateway (`--pushgateway URL`): the metrics of every collecting pass, the same
//! text as the metrics file, sent to a Prometheus Pushgateway for runs under a scheduler,
//! where each pass lands on any node and no node_exporter reads a local file.
//!
//! The group is job `asgard-stats`, plus `shard` with `--shard`: the value `K/N` holds a
//! `/`, so it travels in the Pushgateway's base64 label encoding
//! (`/metrics/job/asgard-stats/shard@base64/<base64url of K/N>`), and the group's label is
//! then `shard="K/N"`, the very label the samples carry. Each shard replaces its own group.
//!
//! A push is a side show: bounded by the connect and request timeouts, logged once when it
//! fails, and it never changes the pass's exit code, documents or stored state. User info
//! in the URL goes as basic authentication; the URL is only ever shown redacted.

use crate::config::{Config, MetricsDestination, PushgatewaySettings, Shard};
use crate::mesos::basic_authorization;
use crate::ops::metrics::Rendered;
use base64::Engine;
use std::io::Read;
use std::time::Duration;

/// The job every pass pushes as.
const JOB: &str = "asgard-stats";
/// The Prometheus text format, as the Pushgateway wants it named.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How much of a refusal's body goes into the log line: the Pushgateway's reason.
const REASON_BYTES: u64 = 300;

/// Pushes a pass's metrics; a failure is logged (once) and goes no further.
pub(crate) fn push(to: &MetricsDestination, metrics: &Rendered) {
    let Some(gateway) = &to.pushgateway else {
        return;
    };
    let url = group_url(gateway, to.shard);
    // Without a known last success, POST leaves the one pushed before in the group,
    // where PUT would replace the whole group.
    let agent = agent(to.connect_timeout, to.request_timeout);
    let (request, text) = match &metrics.without_last_success {
        Some(text) => (agent.post(&url), text),
        None => (agent.put(&url), &metrics.text),
    };
    let request = authorized(request.header("Content-Type", CONTENT_TYPE), gateway);
    match request
        .send(text.as_str())
        .map_err(reason)
        .and_then(answered)
    {
        Ok(()) => log::debug!("metrics pushed to the Pushgateway {}", gateway.shown_url),
        Err(why) => log::warn!(
            "cannot push the metrics to the Pushgateway {}: {why}",
            gateway.shown_url
        ),
    }
}

/// Whether the Pushgateway answers as ready (`GET <url>/-/ready`), for `check`; why not
/// when it does not.
pub(crate) fn probe(config: &Config, gateway: &PushgatewaySettings) -> Result<(), String> {
    let request = agent(config.http.connect_timeout, config.http.request_timeout)
        .get(format!("{}/-/ready", gateway.url));
    authorized(request, gateway)
        .call()
        .map_err(reason)
        .and_then(answered)
}

/// The request with the URL's credentials as basic authentication, if it had any.
fn authorized<B>(
    request: ureq::RequestBuilder<B>,
    gateway: &PushgatewaySettings,
) -> ureq::RequestBuilder<B> {
    match &gateway.credentials {
        Some(c) => request.header(
            "Authorization",
            basic_authorization(&c.principal, c.secret.expose()),
        ),
        None => request,
    }
}

/// `<url>/metrics/job/asgard-stats[/shard@base64/<K/N in base64url>]`.
fn group_url(gateway: &PushgatewaySettings, shard: Option<Shard>) -> String {
    let mut url = format!("{}/metrics/job/{JOB}", gateway.url);
    if let Some(shard) = shard {
        let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(shard.to_string());
        url.push_str(&format!("/shard@base64/{value}"));
    }
    url
}

/// A client for one request: every timeout bounded by the connect and request timeouts,
/// no proxy from the environment, no redirect followed (it would drop the credentials).
fn agent(connect: Duration, request: Duration) -> ureq::Agent {
    let (connect, request) = (Some(connect), Some(request));
    ureq::Agent::config_builder()
        .timeout_global(request)
        .timeout_per_call(request)
        .timeout_resolve(connect)
        .timeout_connect(connect)
        .timeout_send_request(request)
        .timeout_await_100(Some(Duration::from_secs(1)))
        .timeout_send_body(request)
        .timeout_recv_response(request)
        .timeout_recv_body(request)
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("asgard-stats/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Ok for a 2xx answer, else its status and the start of its body.
fn answered(response: ureq::http::Response<ureq::Body>) -> Result<(), String> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut body = String::new();
    let _ = response
        .into_body()
        .into_reader()
        .take(REASON_BYTES)
        .read_to_string(&mut body);
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    Err(if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {body}")
    })
}

/// What went wrong, in the words of the mesos client's reasons. The URL asked holds no
/// credentials, so ureq's own text may be shown.
fn reason(error: ureq::Error) -> String {
    match error {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".into()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(url: &str) -> PushgatewaySettings {
        PushgatewaySettings {
            url: url.into(),
            shown_url: url.into(),
            credentials: None,
        }
    }

    #[test]
    fn shards_are_groups_with_base64_values() {
        let g = gateway("http://pg:9091");
        assert_eq!(
            group_url(&g, None),
            "http://pg:9091/metrics/job/asgard-stats"
        );
        assert_eq!(
            group_url(&g, Some(Shard { index: 1, count: 4 })),
            "http://pg:9091/metrics/job/asgard-stats/shard@base64/MS80"
        );
        // 10/12 is five bytes: no padding.
        assert_eq!(
            group_url(
                &g,
                Some(Shard {
                    index: 10,
                    count: 12
                })
            ),
            "http://pg:9091/metrics/job/asgard-stats/shard@base64/MTAvMTI"
        );
    }
}
