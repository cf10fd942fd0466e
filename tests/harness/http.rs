//! Raw HTTP/1.0 GETs (on loopback, or a pod's address) and Prometheus scrapes (what a kubelet's
//! probe and Prometheus do, without an HTTP client crate).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// `GET path` on 127.0.0.1:`port`: the status code and the body.
pub fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    get_from("127.0.0.1", port, path)
}

/// `GET path` on `host`:`port` (a pod's IP from the node's host, for example).
pub fn get_from(host: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    let address = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("{host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&address, Duration::from_secs(5)).map_err(|e| format!("{host}:{port}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("GET {path}: {e}"))?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| format!("GET {path}: no HTTP body"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("GET {path}: no status line"))?;
    Ok((status, body.to_string()))
}

/// The status code of `GET path`, if anything answers.
pub fn status(port: u16, path: &str) -> Option<u16> {
    get(port, path).ok().map(|(status, _)| status)
}

/// A parsed Prometheus text exposition.
pub struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    pub fn parse(text: &str) -> Result<Self, String> {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        prometheus_parse::Scrape::parse(lines).map(Self).map_err(|e| format!("parsing metrics: {e}"))
    }

    /// `GET /metrics` on 127.0.0.1:`port`, parsed.
    pub fn get(port: u16) -> Result<Self, String> {
        Self::get_from("127.0.0.1", port)
    }

    /// `GET /metrics` on `host`:`port`, parsed.
    pub fn get_from(host: &str, port: u16) -> Result<Self, String> {
        match get_from(host, port, "/metrics")? {
            (200, body) => Self::parse(&body),
            (status, _) => Err(format!("GET /metrics answered {status}")),
        }
    }

    /// The sum of the samples of `metric` whose labels include every `(name, value)` of `labels`.
    pub fn sum(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == metric && labels.iter().all(|(name, value)| s.labels.get(name) == Some(*value)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    /// Every sample.
    pub fn samples(&self) -> impl Iterator<Item = &prometheus_parse::Sample> {
        self.0.samples.iter()
    }

    /// API requests the operator sent: (reads, writes).
    pub fn requests(&self) -> (u64, u64) {
        let verb = |verb| self.sum("webcluster_operator_api_requests_total", &[("verb", verb)]) as u64;
        (verb("read"), verb("write"))
    }

    /// API requests sent since `before` was scraped: (reads, writes).
    pub fn requests_since(&self, before: &Scrape) -> (u64, u64) {
        let ((reads, writes), (reads_before, writes_before)) = (self.requests(), before.requests());
        (reads.saturating_sub(reads_before), writes.saturating_sub(writes_before))
    }

    /// Reconciles finished, whatever their result.
    pub fn reconciles(&self) -> f64 {
        self.sum("webcluster_operator_reconciles_total", &[])
    }

    /// Child objects applied.
    pub fn applied(&self) -> f64 {
        self.sum("webcluster_operator_objects_applied_total", &[])
    }

    /// 1 while the process holds the leader lease.
    pub fn leader(&self) -> f64 {
        self.sum("webcluster_operator_leader", &[])
    }

    /// 1 while the process is a follower waiting for the leader lease.
    pub fn follower(&self) -> f64 {
        self.sum("webcluster_operator_follower", &[])
    }
}
