//! A stand-in for an AWS JSON service on a loopback port, for tests that
//! send signed requests (`crate::signed`) without the sandbox: each request
//! is answered by a function of its operation (from `X-Amz-Target`) and body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// The operations a stand-in was sent, in order.
pub type Sent = Arc<Mutex<Vec<String>>>;

/// Serves on a free loopback port, one connection at a time, each closed
/// after its answer: `(status, body)` of `answer(operation, body)`. Its URL
/// (for `AWS_ENDPOINT_URL`), and what it was sent.
pub fn serve(answer: impl Fn(&str, &str) -> (u16, String) + Send + 'static) -> (String, Sent) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let sent = Sent::default();
    let log = sent.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let Ok(read) = stream.try_clone() else { continue };
            let mut reader = BufReader::new(read);
            let (mut length, mut operation) = (0, String::new());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                if let Some((name, value)) = line.trim_end().split_once(':') {
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        "x-amz-target" => operation = value.trim().rsplit('.').next().unwrap_or("").to_owned(),
                        _ => {}
                    }
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            log.lock().unwrap_or_else(|p| p.into_inner()).push(operation.clone());
            let (status, body) = answer(&operation, &String::from_utf8_lossy(&body));
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
        }
    });
    (url, sent)
}

/// The SDK config of a function whose every request goes to `url`.
pub fn sdk_config(url: &str) -> aws_types::SdkConfig {
    crate::aws::sdk_config_from(&[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_ENDPOINT_URL", url),
    ])
}
