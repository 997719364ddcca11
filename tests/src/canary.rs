//! A small HTTP app standing in for a service's new revision behind its test
//! listener: it answers as the image it is serving, so a check suite can
//! prove which version answers (`/version`), and an image known to be broken
//! fails its health check (`/health`: 500) as a bad build would.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread;

use tiny_http::{Header, Response, Server};

#[derive(Default)]
struct Serving {
    digest: String,
    broken: HashSet<String>,
    requests: u64,
}

pub struct CanaryApp {
    server: Arc<Server>,
    port: u16,
    state: Arc<Mutex<Serving>>,
}

impl CanaryApp {
    /// Listens on a free loopback port.
    pub fn start() -> Self {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind the canary app"));
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let state = Arc::new(Mutex::new(Serving::default()));
        let (incoming, shared) = (server.clone(), state.clone());
        thread::spawn(move || {
            for request in incoming.incoming_requests() {
                let (status, body) = {
                    let mut serving = shared.lock().unwrap_or_else(|p| p.into_inner());
                    serving.requests += 1;
                    let broken = serving.broken.contains(&serving.digest);
                    match request.url() {
                        "/health" if broken => {
                            (500, r#"{"status": "failing", "error": "cannot open the catalog"}"#.to_owned())
                        }
                        "/health" => (200, r#"{"status": "ok"}"#.to_owned()),
                        "/version" => (200, serde_json::json!({ "image": serving.digest }).to_string()),
                        _ => (404, r#"{"error": "no such route"}"#.to_owned()),
                    }
                };
                let json = Header::from_bytes("content-type", "application/json").expect("a header");
                let _ = request.respond(Response::from_string(body).with_status_code(status).with_header(json));
            }
        });
        Self { server, port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The image the new revision's traffic reaches now.
    pub fn serve(&self, digest: &str) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).digest = digest.to_owned();
    }

    /// An image whose build is broken: its health check fails.
    pub fn breaks_on(&self, digest: &str) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).broken.insert(digest.to_owned());
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).requests
    }
}

impl Drop for CanaryApp {
    fn drop(&mut self) {
        self.server.unblock();
    }
}
