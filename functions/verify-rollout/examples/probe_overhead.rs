//! `make bench`'s measure of verify-rollout's checks (built in release, run by
//! the bench): what a check adds over a bare request to the same loopback
//! server, and that a round runs its requests concurrently within the pool.
//!
//! The server answers every request at once with a small JSON body, over
//! kept-alive connections. A bare request is written and read by hand on a
//! kept-alive TCP connection; a check is `probe::sample` over the connector
//! the function uses (`SignedHttp`'s), judged as a round's answers are. Both
//! are timed from sending to the last byte, 1,000 times each after a warm-up,
//! alternating in blocks; the overhead is the difference of the medians. Then a
//! round of the most requests a suite may have goes to a server that holds
//! each answer 20 ms, counting how many are in flight at once.
//!
//! Prints one JSON document.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nightshift::signed::SignedHttp;
use serde_json::json;
use verify_rollout::probe::{self, POOL};
use verify_rollout::suite::{Answer, Check, RevisionValues, Suite, Tally};

const REQUESTS: usize = 1000;
const WARM_UP: usize = 50;
const BLOCK: usize = 100;
const ROUND_CHECKS: usize = 20;
const ROUND_DELAY: Duration = Duration::from_millis(20);
const BODY: &str = r#"{"status":"ok"}"#;

#[derive(Default)]
struct Counts {
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

/// A loopback HTTP/1.1 server answering `BODY` after `delay`; its port.
fn serve(delay: Duration, counts: Arc<Counts>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("its address").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counts = counts.clone();
            thread::spawn(move || answer_all(stream, delay, &counts));
        }
    });
    port
}

fn answer_all(stream: TcpStream, delay: Duration, counts: &Counts) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let answer =
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}", BODY.len());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let now = counts.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counts.most.fetch_max(now, Ordering::SeqCst);
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        counts.in_flight.fetch_sub(1, Ordering::SeqCst);
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// One request written and read by hand on a kept-alive connection.
fn bare(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> Duration {
    let started = Instant::now();
    writer.write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").expect("send");
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("an answer");
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().expect("a length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("the body");
    started.elapsed()
}

fn median(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

fn check(name: &str) -> Check {
    Check {
        name: name.to_owned(),
        method: "GET".into(),
        path: "/health".into(),
        headers: BTreeMap::new(),
        body: None,
        status: Some(200),
        max_ms: Some(2000),
        contains: None,
        json: BTreeMap::from([("/status".to_owned(), json!("ok"))]),
    }
}

fn suite(port: u16, checks: usize) -> Suite {
    Suite {
        target: format!("http://127.0.0.1:{port}"),
        samples: 1,
        interval_seconds: 1,
        pass_ratio: 1.0,
        bake_minutes: 0,
        requests: (0..checks).map(|n| check(&format!("check-{n}"))).collect(),
        alarms: Vec::new(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let vars = HashMap::from([
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), "bench".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "bench".to_owned()),
    ]);
    let signed = SignedHttp::new(&nightshift::aws::sdk_config_from(&vars));
    let http = signed.connector();

    let port = serve(Duration::ZERO, Arc::new(Counts::default()));
    let one = suite(port, 1);
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut writer = stream.try_clone().expect("a second handle");
    let mut reader = BufReader::new(stream);

    for _ in 0..WARM_UP {
        bare(&mut reader, &mut writer);
        probe::sample(http, &one.target, &one.requests[0]).await;
    }
    let (mut bares, mut checks) = (Vec::with_capacity(REQUESTS), Vec::with_capacity(REQUESTS));
    while bares.len() < REQUESTS {
        for _ in 0..BLOCK {
            bares.push(bare(&mut reader, &mut writer));
        }
        for _ in 0..BLOCK {
            let started = Instant::now();
            let answers = vec![probe::sample(http, &one.target, &one.requests[0]).await];
            // Judged as a round's answers are.
            let mut tally = Tally::default();
            tally.add_round(&one, &answers, &[], 0);
            checks.push(started.elapsed());
            assert!(matches!(answers[0], Answer::Got { status: 200, .. }), "the check was answered: {answers:?}");
        }
    }
    let (bare_ms, check_ms) = (median(&mut bares), median(&mut checks));

    let counts = Arc::new(Counts::default());
    let slow = serve(ROUND_DELAY, counts.clone());
    let round = suite(slow, ROUND_CHECKS).for_revision(&RevisionValues::default());
    let started = Instant::now();
    let answers = probe::round(http, &round).await;
    let took = started.elapsed();
    assert_eq!(answers.len(), ROUND_CHECKS);
    assert!(answers.iter().all(|a| matches!(a, Answer::Got { status: 200, .. })), "{answers:?}");

    let round_ms = took.as_secs_f64() * 1000.0;
    println!(
        "{}",
        json!({
            "requests": REQUESTS,
            "bare_ms": bare_ms,
            "check_ms": check_ms,
            "overhead_ms": check_ms - bare_ms,
            "round": {
                "checks": ROUND_CHECKS,
                "pool": POOL,
                "server_delay_ms": ROUND_DELAY.as_millis(),
                "most_in_flight": counts.most.load(Ordering::SeqCst),
                "took_ms": round_ms,
            },
        })
    );
}
