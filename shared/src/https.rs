//! The one HTTPS connector of a function: every AWS client, every signed
//! request, the webhooks and verify-rollout's checks go through it, sharing
//! one pool of connections and one TLS configuration, made once at init.
//!
//! HTTP/1.1 (hyper's client) over rustls with ring. The roots it trusts are
//! Mozilla's, built into the binary as trust anchors (`webpki-roots`), plus
//! the certificates of `SSL_CERT_FILE` when it is set (a private CA a check
//! target or a webhook proxy is signed by). Built in, because parsing a
//! platform bundle is most of what a function's init would otherwise do: Lambda's
//! holds about 140 certificates in PEM, and reading and decoding them took
//! about 1 ms of a cold start (docs/performance.md). The SDK's own HTTPS
//! client (`aws-smithy-http-client`) cannot take pre-parsed roots, and brought
//! HTTP/2, which no request here uses.
//!
//! Errors are classified as the SDK's client classifies them, so that its
//! retries treat a connection that failed or closed as transient.

use std::error::Error as StdError;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// How long a TCP connection may take to open, as the SDK's default has it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The connector: cheap to clone (the pool and the TLS configuration are shared).
#[derive(Clone)]
pub struct Https {
    client: Client<HttpsConnector<TcpConnector>, SdkBody>,
}

impl std::fmt::Debug for Https {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Https")
    }
}

/// The process's connector, made on first use (at init: `aws::sdk_config`).
pub fn shared() -> Https {
    static SHARED: OnceLock<Https> = OnceLock::new();
    SHARED.get_or_init(|| Https::new(roots(std::env::var_os("SSL_CERT_FILE").as_deref()))).clone()
}

/// The SDK clients' HTTP client: the process's connector, whatever settings
/// a client asks for (every client here asks for the same: the SDK's connect
/// timeout, no read timeout; `aws::sdk_config_from`).
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(shared())
}

/// Mozilla's roots, and those of `extra` (a PEM file) when given. A file
/// that cannot be read or holds no certificate is logged, naming it, and the
/// built-in roots stay: a function still reaches AWS.
pub fn roots(extra: Option<&std::ffi::OsStr>) -> RootCertStore {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let Some(path) = extra.filter(|p| !p.is_empty()) else { return roots };
    let shown = std::path::Path::new(path).display();
    match std::fs::read(path) {
        Ok(pem) => {
            let certificates: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
            let (added, refused) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                tracing::error!(
                    file = %shown,
                    refused,
                    "SSL_CERT_FILE holds no certificate that can be trusted; only the built-in roots are trusted"
                );
            }
        }
        Err(err) => tracing::error!(
            file = %shown,
            error = %err,
            "SSL_CERT_FILE cannot be read; only the built-in roots are trusted"
        ),
    }
    roots
}

impl Https {
    /// A connector trusting `roots`.
    pub fn new(roots: RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https =
            HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new()).pool_timer(TokioTimer::new()).build(https);
        Self { client }
    }
}

impl HttpConnector for Https {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        let sent = self.client.request(request);
        HttpConnectorFuture::new(async move {
            match sent.await {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|err| ConnectorError::other(err.into(), None)),
                Err(err) => Err(classify(err)),
            }
        })
    }
}

impl HttpClient for Https {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// As the SDK's own client has it: a connection that could not be made, was
/// closed or failed in I/O is transient (`io`, retried); an answer cut short
/// is transient too; what the request itself got wrong is the caller's.
fn classify(err: hyper_util::client::legacy::Error) -> ConnectorError {
    let io_error = find_source::<std::io::Error>(&err).map(std::io::Error::kind);
    let hyper = find_source::<hyper::Error>(&err);
    let timed_out = io_error == Some(std::io::ErrorKind::TimedOut) || hyper.is_some_and(hyper::Error::is_timeout);
    let callers = hyper.is_some_and(hyper::Error::is_user);
    let io = err.is_connect() || io_error.is_some() || hyper.is_some_and(|h| h.is_closed() || h.is_canceled());
    let cut_short = hyper.is_some_and(hyper::Error::is_incomplete_message);
    let boxed: Box<dyn StdError + Send + Sync> = err.into();
    if timed_out {
        ConnectorError::timeout(boxed)
    } else if callers {
        ConnectorError::user(boxed)
    } else if io {
        ConnectorError::io(boxed)
    } else if cut_short {
        ConnectorError::other(boxed, Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(boxed, None)
    }
}

fn find_source<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_roots_are_trusted_and_a_file_adds_to_them() {
        let built_in = roots(None).roots.len();
        assert!(built_in > 100, "Mozilla's roots: {built_in}");
        assert_eq!(roots(Some(std::ffi::OsStr::new(""))).roots.len(), built_in, "an empty SSL_CERT_FILE is unset");
        let missing = roots(Some(std::ffi::OsStr::new("/nonexistent/roots.pem")));
        assert_eq!(missing.roots.len(), built_in, "an unreadable file leaves the built-in roots");
        let dir = std::env::temp_dir().join(format!("nightshift-https-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        assert_eq!(roots(Some(not_pem.as_os_str())).roots.len(), built_in);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_transient_io_error() {
        // A port nobody listens on: bind one, then close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let https = Https::new(roots(None));
        let request = HttpRequest::get(format!("http://127.0.0.1:{port}/")).unwrap();
        let err = https.call(request).await.unwrap_err();
        assert!(err.is_io(), "{err:?}");
    }
}
