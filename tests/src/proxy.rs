//! A recording proxy in front of the local AWS: counts every request a
//! function process sends on the wire, by AWS operation.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tiny_http::{Header, Response, Server, StatusCode};

/// Names the AWS operation of a request: from `X-Amz-Target` for the JSON
/// protocols (ECS, Application Auto Scaling), from method and query for S3.
pub fn operation(method: &str, path: &str, target: Option<&str>) -> String {
    if let Some(target) = target {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let has = |k: &str| query.split('&').any(|p| p == k || p.starts_with(&format!("{k}=")));
    // Path-style: /bucket[/key]; a trailing slash alone is still the bucket.
    let object = path.trim_start_matches('/').split_once('/').is_some_and(|(_, key)| !key.is_empty());
    let op = match (method, object) {
        ("GET", false) if has("lifecycle") => "GetBucketLifecycleConfiguration",
        ("PUT", false) if has("lifecycle") => "PutBucketLifecycleConfiguration",
        ("GET", false) if has("versions") => "ListObjectVersions",
        ("GET", false) if has("list-type") => "ListObjectsV2",
        ("GET", false) if has("tagging") => "GetBucketTagging",
        ("POST", false) if has("delete") => "DeleteObjects",
        ("GET", false) => "ListObjects",
        ("GET", true) => "GetObject",
        ("PUT", true) => "PutObject",
        ("HEAD", true) => "HeadObject",
        ("DELETE", true) => "DeleteObject",
        _ => return format!("{method} {path}"),
    };
    op.to_owned()
}

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;
type Journal = Arc<Mutex<Vec<serde_json::Value>>>;

pub struct RecordingProxy {
    server: Arc<Server>,
    port: u16,
    counts: Counts,
    failed: Counts,
    journal: Journal,
}

impl RecordingProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        // Accepted connections take TCP_NODELAY from the listener. tiny_http writes an answer's
        // head and body in separate writes (through a 1 KiB buffer): with Nagle's algorithm, the
        // body of every answer over 1 KiB waited for the client's delayed ACK of the head, 40 ms.
        let listener = socket2::Socket::from(listener);
        listener.set_tcp_nodelay(true).expect("TCP_NODELAY on the proxy's listener");
        let server =
            Arc::new(Server::from_listener(std::net::TcpListener::from(listener), None).expect("serve the proxy"));
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let (counts, failed, journal) = (Counts::default(), Counts::default(), Journal::default());
        {
            let (server, counts, failed, journal, upstream) =
                (server.clone(), counts.clone(), failed.clone(), journal.clone(), upstream.to_owned());
            thread::spawn(move || {
                for request in server.incoming_requests() {
                    let (counts, failed, journal, upstream) =
                        (counts.clone(), failed.clone(), journal.clone(), upstream.clone());
                    thread::spawn(move || forward(request, &upstream, &counts, &failed, &journal));
                }
            });
        }
        Self { server, port, counts, failed, journal }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests by operation since the last `take`.
    pub fn take(&self) -> BTreeMap<String, u64> {
        take(&self.counts)
    }

    /// Requests of `operation` so far (since the last `take` or `reset`).
    pub fn count(&self, operation: &str) -> u64 {
        self.all().get(operation).copied().unwrap_or(0)
    }

    /// Requests by operation so far, without forgetting them.
    pub fn all(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn total(&self) -> u64 {
        self.all().values().sum()
    }

    pub fn reset(&self) {
        self.take();
    }

    /// Of those, the ones answered with an error status, by operation and
    /// status (`"ListObjectVersions 500"`), since the last `take_failed`:
    /// an SDK retries some of them, and every retry is a request.
    pub fn take_failed(&self) -> BTreeMap<String, u64> {
        take(&self.failed)
    }

    /// The requests themselves since the last `take_requests`, in the order
    /// they were answered: method, URL, `X-Amz-Target`, the signing name of
    /// their SigV4 scope (`service`), operation, body (lossy UTF-8), when it
    /// arrived (`arrived_ms`, since the epoch) and how long the upstream took
    /// to answer it (`upstream_ms`).
    pub fn take_requests(&self) -> Vec<serde_json::Value> {
        std::mem::take(&mut *self.journal.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The signing name in a SigV4 `Authorization` header's credential scope
/// (`Credential=<key>/<date>/<region>/<service>/aws4_request`).
pub fn signing_name(authorization: &str) -> Option<&str> {
    let scope = authorization.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    scope.split('/').nth(3)
}

fn take(counts: &Counts) -> BTreeMap<String, u64> {
    std::mem::take(&mut *counts.lock().unwrap_or_else(|p| p.into_inner()))
}

fn count(counts: &Counts, key: String) {
    *counts.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn forward(mut request: tiny_http::Request, upstream: &str, counts: &Counts, failed: &Counts, journal: &Journal) {
    let method = request.method().as_str().to_owned();
    let url = request.url().to_owned();
    let target = request.headers().iter().find(|h| h.field.equiv("X-Amz-Target")).map(|h| h.value.as_str().to_owned());
    let op = operation(&method, &url, target.as_deref());
    count(counts, op.clone());
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let authorization =
        request.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str().to_owned());
    let arrived = std::time::SystemTime::now();
    let mut head = format!("{method} {url} HTTP/1.1\r\n");
    for h in request.headers() {
        let field = h.field.as_str().as_str();
        if !["connection", "content-length", "transfer-encoding"].contains(&field.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{field}: {}\r\n", h.value));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let mut sent = head.into_bytes();
    sent.extend_from_slice(&body);
    let answer = TcpStream::connect(upstream).and_then(|mut upstream| {
        upstream.set_read_timeout(Some(Duration::from_secs(120)))?;
        upstream.set_nodelay(true)?;
        upstream.write_all(&sent)?;
        let mut answer = Vec::new();
        upstream.read_to_end(&mut answer)?;
        Ok(answer)
    });
    let answered_after = arrived.elapsed().unwrap_or_default();
    journal.lock().unwrap_or_else(|p| p.into_inner()).push(serde_json::json!({
        "method": method,
        "url": url,
        "target": target,
        "service": authorization.as_deref().and_then(signing_name),
        "operation": op,
        "body": String::from_utf8_lossy(&body),
        "arrived_ms": arrived.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1000.0,
        "upstream_ms": answered_after.as_secs_f64() * 1000.0,
    }));
    let Ok(answer) = answer else {
        count(failed, format!("{op} 502"));
        let _ = request.respond(Response::empty(502));
        return;
    };
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(answer.len());
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let body = answer.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let status: u16 =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(502);
    if status >= 400 {
        count(failed, format!("{op} {status}"));
    }
    let mut response = Response::from_data(body).with_status_code(StatusCode(status));
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let lower = k.trim().to_ascii_lowercase();
            if !["connection", "content-length", "transfer-encoding", "date", "server"].contains(&lower.as_str())
                && let Ok(h) = Header::from_bytes(k.trim().as_bytes(), v.trim().as_bytes())
            {
                response.add_header(h);
            }
        }
    }
    let _ = request.respond(response);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_from_the_target_or_the_s3_request() {
        let table = [
            ("POST", "/", Some("AmazonEC2ContainerServiceV20141113.DescribeServices"), "DescribeServices"),
            ("POST", "/", Some("AnyScaleFrontendService.RegisterScalableTarget"), "RegisterScalableTarget"),
            ("GET", "/logs?lifecycle", None, "GetBucketLifecycleConfiguration"),
            ("PUT", "/logs?lifecycle", None, "PutBucketLifecycleConfiguration"),
            ("GET", "/logs?versions&prefix=loki%2F", None, "ListObjectVersions"),
            ("GET", "/logs?list-type=2", None, "ListObjectsV2"),
            ("POST", "/logs?delete", None, "DeleteObjects"),
            ("POST", "/logs/?delete", None, "DeleteObjects"),
            ("GET", "/logs/?versions&x-id=ListObjectVersions", None, "ListObjectVersions"),
            ("GET", "/gti-did?tagging", None, "GetBucketTagging"),
            ("GET", "/gti-did/.well-known/did.json", None, "GetObject"),
            ("PUT", "/gti-did/.well-known/did.json", None, "PutObject"),
        ];
        for (method, path, target, want) in table {
            assert_eq!(operation(method, path, target), want, "{method} {path}");
        }
    }

    #[test]
    fn the_signing_name_is_the_credential_scopes_fourth_part() {
        let header = "AWS4-HMAC-SHA256 Credential=AKID/20261206/eu-west-1/ecs/aws4_request, \
                      SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(signing_name(header), Some("ecs"));
        assert_eq!(signing_name("Bearer token"), None);
    }
}
