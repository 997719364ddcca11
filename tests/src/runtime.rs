//! A stand-in for the Lambda Runtime API, so a built function binary runs
//! here exactly as it runs in Lambda: it polls `next`, handles the event, and
//! posts its response or error.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tiny_http::{Header, Method, Response, Server};

use crate::sandbox::workspace_root;

const API: &str = "/2018-06-01/runtime";

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The handler returned this JSON.
    Response(Value),
    /// The handler returned an error.
    Error { error_type: String, error_message: String },
    /// The process exited (a failed init) before answering.
    Exited { status: Option<i32>, output: String },
}

impl Outcome {
    /// The response, or a panic that shows what came instead.
    pub fn response(self) -> Value {
        match self {
            Self::Response(value) => value,
            other => panic!("expected a response, got {other:?}"),
        }
    }
}

#[derive(Default)]
struct State {
    pending: VecDeque<(String, Vec<u8>, u64)>,
    outcomes: HashMap<String, Outcome>,
    /// When the process first asked for an invocation: the end of its init.
    first_poll: Option<Instant>,
    /// When each invocation was handed out, and how long its answer took.
    handed_out: HashMap<String, Instant>,
    took: HashMap<String, Duration>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// The account the function is deployed in (its ARN's); the sandbox's default when empty.
    account: String,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where the workspace's function binaries are: `NIGHTSHIFT_BIN_DIR`, or the
/// debug build under the target directory.
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("NIGHTSHIFT_BIN_DIR").map_or_else(
        || {
            let target =
                std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
            target.join("debug")
        },
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built; run `cargo build --workspace --bins` first (or set NIGHTSHIFT_BIN_DIR)",
        path.display()
    );
    path
}

/// A function's settings as it runs "deployed" against a local AWS: `env`,
/// and the credentials it signs with. A local AWS takes any key: each function
/// signs as itself (or, `keys`, as its role in another account), its settings
/// in the session token, so the sandbox can tell whose requests it answers and
/// how that function was set up (the IAM proof checks each request against the
/// policy the template gives it so).
pub fn deployed_env(name: &str, env: &[(String, String)], keys: Option<(String, String)>) -> Vec<(String, String)> {
    let mut all = env.to_vec();
    if env.iter().any(|(k, _)| k == "AWS_ENDPOINT_URL") {
        let (key, secret) = keys.unwrap_or_else(|| (name.to_owned(), "testing".to_owned()));
        all.extend([
            ("AWS_ACCESS_KEY_ID".to_owned(), key),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), secret),
            ("AWS_SESSION_TOKEN".to_owned(), crate::sandbox::settings_token(env)),
        ]);
    }
    all
}

/// One function process, attached to its own Runtime API stand-in.
pub struct FunctionProcess {
    shared: Arc<Shared>,
    server: Arc<Server>,
    child: Child,
    output: Arc<Mutex<String>>,
    next_id: u64,
    spawned_at: Instant,
}

impl FunctionProcess {
    /// Starts the binary with `env` (and the variables Lambda itself sets).
    pub fn spawn(binary: &Path, env: &[(String, String)]) -> Self {
        Self::spawn_as(binary, env, crate::sandbox::ACCOUNT, None)
    }

    /// Starts `program` with `args` as the function `name` (the bench's boto3
    /// peer: an interpreter and its script), otherwise as [`Self::spawn`].
    pub fn spawn_program(program: &Path, args: &[String], name: &str, env: &[(String, String)]) -> Self {
        Self::start(program, args, name, env, crate::sandbox::ACCOUNT, None)
    }

    /// The process's id (the bench moves it into a CPU-limited cgroup).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the binary as deployed in another account of the sandbox: signed
    /// with the credentials of its role there (`nightshift-<Function>Role-…`,
    /// assumed through STS with the function's name as session, so the IAM
    /// proof knows whose requests they are), its ARN in that account.
    pub fn spawn_in(sandbox: &crate::sandbox::Sandbox, account: &str, binary: &Path, env: &[(String, String)]) -> Self {
        let name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("function");
        let (key, secret) = sandbox.function_credentials(account, name);
        Self::spawn_as(binary, env, account, Some((key, secret)))
    }

    fn spawn_as(binary: &Path, env: &[(String, String)], account: &str, keys: Option<(String, String)>) -> Self {
        let name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("function");
        Self::start(binary, &[], name, env, account, keys)
    }

    fn start(
        binary: &Path,
        args: &[String],
        name: &str,
        env: &[(String, String)],
        account: &str,
        keys: Option<(String, String)>,
    ) -> Self {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind the Runtime API stand-in"));
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let shared = Arc::new(Shared { account: account.to_owned(), ..Shared::default() });
        {
            let (server, shared) = (server.clone(), shared.clone());
            thread::spawn(move || {
                for request in server.incoming_requests() {
                    let shared = shared.clone();
                    thread::spawn(move || serve(request, &shared));
                }
            });
        }
        let spawned_at = Instant::now();
        let mut child = Command::new(binary)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(deployed_env(name, env, keys))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let output = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            thread::spawn(move || drain(pipe, &output));
        }
        Self { shared, server, child, output, next_id: 0, spawned_at }
    }

    /// Invokes with the deadline Lambda would give a function with a 60 s timeout.
    pub fn invoke(&mut self, event: &Value) -> Outcome {
        self.invoke_with_timeout(event, Duration::from_secs(60))
    }

    /// Invokes and waits for the outcome; `timeout` sets the context's deadline.
    pub fn invoke_with_timeout(&mut self, event: &Value, timeout: Duration) -> Outcome {
        self.next_id += 1;
        let id = format!("req-{}", self.next_id);
        let deadline = SystemTime::now() + timeout;
        let deadline_ms =
            u64::try_from(deadline.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX);
        let body = serde_json::to_vec(event).expect("event JSON");
        self.shared.lock().pending.push_back((id.clone(), body, deadline_ms));
        self.shared.changed.notify_all();

        // Waits past the deadline too: what the function does then is part of what is tested.
        let give_up = Instant::now() + timeout + Duration::from_secs(30);
        let mut state = self.shared.lock();
        loop {
            if let Some(outcome) = state.outcomes.remove(&id) {
                return outcome;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                drop(state);
                return self.exited(status);
            }
            assert!(Instant::now() < give_up, "no answer to {id} within {timeout:?} + 30 s");
            state =
                self.shared.changed.wait_timeout(state, Duration::from_millis(50)).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Invokes and also returns how long the function took, from the event
    /// being handed out to its answer arriving.
    pub fn invoke_timed(&mut self, event: &Value) -> (Outcome, Duration) {
        self.invoke_timed_within(event, Duration::from_secs(60))
    }

    /// As `invoke_timed`, with `timeout` as the context's deadline.
    pub fn invoke_timed_within(&mut self, event: &Value, timeout: Duration) -> (Outcome, Duration) {
        let outcome = self.invoke_with_timeout(event, timeout);
        let id = format!("req-{}", self.next_id);
        let took = self.shared.lock().took.remove(&id).unwrap_or_default();
        (outcome, took)
    }

    /// How long the process took from its start to its first poll for an
    /// invocation (its init), waiting up to `within` for it.
    pub fn init_time(&self, within: Duration) -> Option<Duration> {
        let until = Instant::now() + within;
        loop {
            if let Some(at) = self.shared.lock().first_poll {
                return Some(at - self.spawned_at);
            }
            if Instant::now() >= until {
                return None;
            }
            thread::sleep(Duration::from_micros(200));
        }
    }

    /// The process's peak resident memory so far (Linux `VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Waits for the process to exit by itself (for a failed init).
    pub fn wait_for_exit(mut self, within: Duration) -> Outcome {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return self.exited(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("the function did not exit within {within:?}")
    }

    /// The report lines the process has written, each checked as EMF, once
    /// there are `count` of them (its output is read by a thread: this waits
    /// up to 10 s for it to catch up).
    pub fn report_lines(&self, count: usize) -> Vec<serde_json::Value> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = crate::emf::report_lines(&self.output());
            if lines.len() >= count || Instant::now() >= until {
                return lines;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the process wrote so far (its logs).
    pub fn output(&self) -> String {
        self.output.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn exited(&self, status: ExitStatus) -> Outcome {
        // Let the pipe readers catch up with what the process wrote last.
        thread::sleep(Duration::from_millis(100));
        Outcome::Exited { status: status.code(), output: self.output() }
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.unblock();
    }
}

fn drain(mut pipe: Box<dyn Read + Send>, output: &Mutex<String>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
        output.lock().unwrap_or_else(|p| p.into_inner()).push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

fn serve(mut request: tiny_http::Request, shared: &Shared) {
    let url = request.url().to_owned();
    let method = request.method().clone();
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let path = url.strip_prefix(API).unwrap_or(&url);

    if method == Method::Get && path == "/invocation/next" {
        let (id, event, deadline_ms) = {
            let mut state = shared.lock();
            state.first_poll.get_or_insert_with(Instant::now);
            loop {
                if let Some(next) = state.pending.pop_front() {
                    state.handed_out.insert(next.0.clone(), Instant::now());
                    break next;
                }
                state = shared.changed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        let response = Response::from_data(event)
            .with_header(header("Content-Type", "application/json"))
            .with_header(header("Lambda-Runtime-Aws-Request-Id", &id))
            .with_header(header("Lambda-Runtime-Deadline-Ms", &deadline_ms.to_string()))
            .with_header(header(
                "Lambda-Runtime-Invoked-Function-Arn",
                &format!("arn:aws:lambda:us-east-1:{}:function:nightshift", shared.account),
            ))
            .with_header(header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"));
        let _ = request.respond(response);
        return;
    }

    let outcome = path.strip_prefix("/invocation/").and_then(|rest| rest.split_once('/')).map(|(id, what)| {
        let outcome = match what {
            "response" => Outcome::Response(serde_json::from_slice(&body).unwrap_or(Value::Null)),
            _ => {
                let error: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                Outcome::Error {
                    error_type: error["errorType"].as_str().unwrap_or_default().to_owned(),
                    error_message: error["errorMessage"].as_str().unwrap_or_default().to_owned(),
                }
            }
        };
        (id.to_owned(), outcome)
    });
    match outcome {
        Some((id, outcome)) => {
            let mut state = shared.lock();
            if let Some(at) = state.handed_out.remove(&id) {
                state.took.insert(id.clone(), at.elapsed());
            }
            state.outcomes.insert(id, outcome);
            drop(state);
            shared.changed.notify_all();
            let _ = request.respond(Response::empty(202));
        }
        // `init/error` and anything else: the process exits after it, which `invoke` sees.
        None => {
            let _ = request.respond(Response::empty(202));
        }
    }
}
