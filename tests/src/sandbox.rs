//! A local AWS for one test or one demo: moto's server on a free loopback
//! port, with nightshift's backdate route (see `sandbox/moto_sandbox.py`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_types::region::Region;
use aws_types::sdk_config::SdkConfig;

use crate::wire::RequestCounter;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";
/// The state table the sandbox starts with, named as the template's logical id (as the IAM proof names it).
pub const STATE_TABLE: &str = "StateTable";

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A function's own settings (not the `AWS_*` ones) as hex of their JSON, in
/// the session token it signs with: the sandbox reads them back to log how
/// the function that sent a request was set up (`sandbox/iam_requests.py`).
pub fn settings_token(env: &[(String, String)]) -> String {
    let settings: serde_json::Map<String, serde_json::Value> = env
        .iter()
        .filter(|(k, _)| !k.starts_with("AWS_"))
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let json = serde_json::Value::Object(settings).to_string();
    format!("nightshift-{}", json.bytes().map(|b| format!("{b:02x}")).collect::<String>())
}

pub struct Sandbox {
    child: Child,
    // Held open: the server exits when it closes, even if this process is killed.
    _stdin: ChildStdin,
    port: u16,
}

impl Sandbox {
    /// Starts the server and waits until it accepts connections.
    pub fn start() -> Self {
        let script = workspace_root().join("sandbox/moto_sandbox.py");
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let mut command = Command::new(&python);
        // `make test` asks every sandbox to log what IAM must allow for each function's requests.
        if let Some(folder) = std::env::var_os("NIGHTSHIFT_REQUEST_LOG") {
            command.env("NIGHTSHIFT_REQUEST_LOG", folder);
        }
        let mut child = command
            .arg(&script)
            .args(["--port", "0", "--exit-on-stdin-close"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} {}: {e}", script.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("sandbox stdout");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the sandbox did not start (is moto[server] installed?); it said {line:?}"));
        Self { child, _stdin: stdin, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The variables a function process needs to reach this sandbox.
    pub fn function_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            // The template's state table, which the sandbox starts with.
            ("STATE_TABLE", STATE_TABLE.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub fn sdk_config(&self) -> SdkConfig {
        self.config_signed_as("testing", None)
    }

    /// The config of a function's clients in-process: they sign as the
    /// function, with its settings, as the built binaries do (see
    /// [`settings_token`]), so the IAM proof checks their requests too.
    pub fn sdk_config_for(&self, function: &str, settings: &[(&str, &str)]) -> SdkConfig {
        let settings: Vec<(String, String)> =
            settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.config_signed_as(function, Some(settings_token(&settings)))
    }

    /// The tests' own config in another account (through an assumed role, as in AWS) and region.
    pub fn config_in(&self, account: &str, region: &str) -> SdkConfig {
        let (key, secret, token) = if account == ACCOUNT {
            ("testing".to_owned(), "testing".to_owned(), None)
        } else {
            let body = serde_json::json!({"role_arn": format!("arn:aws:iam::{account}:role/nightshift-tests")});
            let creds = self.call("POST", "/_sandbox/assume-role", Some(&body));
            let field = |name: &str| creds[name].as_str().unwrap_or_default().to_owned();
            (field("access_key_id"), field("secret_access_key"), Some(field("session_token")))
        };
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(self.endpoint())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(key, secret, token, None, "sandbox")))
            .http_client(nightshift::aws::http_client())
            .build()
    }

    fn config_signed_as(&self, key: &str, token: Option<String>) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                key, "testing", token, None, "sandbox",
            )))
            .http_client(nightshift::aws::http_client())
            .build()
    }

    /// An S3 client as the functions build it (path-style), counting its requests.
    pub fn s3_counted(&self) -> (aws_sdk_s3::Client, RequestCounter) {
        let counter = RequestCounter::default();
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config())
            .force_path_style(true)
            .interceptor(counter.clone())
            .build();
        (aws_sdk_s3::Client::from_conf(config), counter)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.s3_counted().0
    }

    /// An ECS client, counting its requests.
    pub fn ecs_counted(&self) -> (aws_sdk_ecs::Client, RequestCounter) {
        let counter = RequestCounter::default();
        let config = aws_sdk_ecs::config::Builder::from(&self.sdk_config()).interceptor(counter.clone()).build();
        (aws_sdk_ecs::Client::from_conf(config), counter)
    }

    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        self.ecs_counted().0
    }

    /// The state table, read and written as the tests (not a function).
    pub fn state(&self) -> nightshift::state::StateTable {
        let signed = nightshift::signed::SignedHttp::new(&self.sdk_config());
        nightshift::state::StateTable::new(std::sync::Arc::new(signed), STATE_TABLE)
    }

    /// What the state table remembers of a service.
    pub async fn memory(&self, service_arn: &str) -> nightshift::state::Memory {
        self.state().memory(service_arn).await.expect("the state table reads")
    }

    /// The digests quarantined on a service, as the state table holds them.
    pub async fn quarantined(&self, service_arn: &str) -> Vec<String> {
        self.memory(service_arn).await.quarantine.into_iter().map(|q| q.digest).collect()
    }

    /// An Application Auto Scaling client, counting its requests.
    pub fn scaling_counted(&self) -> (aws_sdk_applicationautoscaling::Client, RequestCounter) {
        let counter = RequestCounter::default();
        let config = aws_sdk_applicationautoscaling::config::Builder::from(&self.sdk_config())
            .interceptor(counter.clone())
            .build();
        (aws_sdk_applicationautoscaling::Client::from_conf(config), counter)
    }

    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.sdk_config())
    }

    /// An ECR client whose requests `counter` counts too (beside another client's).
    pub fn ecr_counted_by(&self, counter: &RequestCounter) -> aws_sdk_ecr::Client {
        let config = aws_sdk_ecr::config::Builder::from(&self.sdk_config()).interceptor(counter.clone()).build();
        aws_sdk_ecr::Client::from_conf(config)
    }

    pub fn codedeploy(&self) -> aws_sdk_codedeploy::Client {
        aws_sdk_codedeploy::Client::new(&self.sdk_config())
    }

    /// Ends a CodeDeploy deployment as CodeDeploy would: `Succeeded` makes
    /// the ECS service run the AppSpec's task definition, `Failed` and
    /// `Stopped` leave it as it was. Returns the deployment as it now is.
    pub fn end_deployment(&self, deployment_id: &str, status: &str) -> serde_json::Value {
        let body = serde_json::json!({"deployment": deployment_id, "status": status});
        self.call("POST", "/_sandbox/codedeploy/end", Some(&body))
    }

    /// The credentials a function deployed in `account` signs with: its role
    /// there, assumed with the function's name as session name (see `accounts.py`).
    pub fn function_credentials(&self, account: &str, function: &str) -> (String, String) {
        let logical: String = function.split('-').map(|w| w[..1].to_uppercase() + &w[1..]).collect::<String>();
        let role = format!("arn:aws:iam::{account}:role/nightshift-{logical}FunctionRole-SANDBOX0001");
        let body = serde_json::json!({"role_arn": role, "session": function});
        let creds = self.call("POST", "/_sandbox/assume-role", Some(&body));
        let field = |name: &str| creds[name].as_str().unwrap_or_default().to_owned();
        (field("access_key_id"), field("secret_access_key"))
    }

    /// Makes a stack's cross-account parts in `account` from `template`
    /// (`template.yaml` or `registry.yaml`) with these parameters, as
    /// CloudFormation would (see `sandbox/accounts.py`); the logical ids made.
    pub fn deploy_stack(&self, account: &str, template: &str, parameters: serde_json::Value) -> Vec<String> {
        let body =
            serde_json::json!({"account": account, "region": REGION, "template": template, "parameters": parameters});
        let made = self.call("POST", "/_sandbox/stack", Some(&body));
        made["made"].as_array().into_iter().flatten().filter_map(|m| m.as_str().map(str::to_owned)).collect()
    }

    /// What is on `account`'s default event bus (put there, or delivered from another account).
    pub fn bus(&self, account: &str) -> Vec<serde_json::Value> {
        let found = self.call("GET", &format!("/_sandbox/events?account={account}&region={REGION}"), None);
        found["events"].as_array().cloned().unwrap_or_default()
    }

    /// Ends a service's ECS rollout in another account (see [`Self::end_rollout`]).
    pub fn end_rollout_in(&self, account: &str, cluster: &str, service: &str, outcome: &str) -> serde_json::Value {
        let body = serde_json::json!({"account": account, "cluster": cluster, "service": service, "outcome": outcome, "region": REGION});
        self.call("POST", "/_sandbox/ecs/rollout", Some(&body))
    }

    /// Ends a service's ECS rollout as ECS would: `COMPLETED`, or `FAILED`
    /// (then, with the circuit breaker's rollback on, a rollback deployment starts).
    pub fn end_rollout(&self, cluster: &str, service: &str, outcome: &str) -> serde_json::Value {
        let body = serde_json::json!({"cluster": cluster, "service": service, "outcome": outcome, "region": REGION});
        self.call("POST", "/_sandbox/ecs/rollout", Some(&body))
    }

    pub fn scheduler(&self) -> aws_sdk_scheduler::Client {
        aws_sdk_scheduler::Client::new(&self.sdk_config())
    }

    /// Every EventBridge Scheduler schedule: name, group, expression, target (Arn, RoleArn, Input).
    pub fn schedules(&self) -> Vec<serde_json::Value> {
        let answer = self.call("GET", &format!("/_sandbox/scheduler/schedules?region={REGION}"), None);
        answer["schedules"].as_array().cloned().unwrap_or_default()
    }

    /// Lets `minutes` pass for ECS's deployments and EventBridge Scheduler's
    /// schedules (their times move into the past), without waiting; then runs
    /// the one-time schedules now due: they are answered, for the caller to
    /// invoke their targets, and those that say so deleted.
    pub fn pass_time(&self, minutes: f64) -> Vec<serde_json::Value> {
        let body = serde_json::json!({"minutes": minutes, "region": REGION});
        let answer = self.call("POST", "/_sandbox/time/pass", Some(&body));
        answer["fired"].as_array().cloned().unwrap_or_else(|| panic!("time/pass: {answer}"))
    }

    /// Answers the next requests of `operation` (`GetParameter`, `CreateSchedule`, …) with these errors,
    /// in order, then as usual: `[{"status": 400, "type": "ThrottlingException"}, {"status": 503}]`.
    pub fn fail(&self, operation: &str, answers: serde_json::Value) {
        let body = serde_json::json!({"operation": operation, "answers": answers});
        self.call("POST", "/_sandbox/fail", Some(&body));
    }

    /// Says the invocation of a schedule that fired (as [`Self::pass_time`] answers it) failed:
    /// Scheduler tries it again at the next pass, until its retries are spent, then dead-letters it.
    pub fn schedule_failed(&self, fired: &serde_json::Value, error: &str) -> serde_json::Value {
        let body =
            serde_json::json!({"group": fired["group"], "name": fired["name"], "error": error, "region": REGION});
        self.call("POST", "/_sandbox/scheduler/failed", Some(&body))
    }

    /// An SQS queue for schedules to dead-letter into: its ARN.
    pub fn dead_letter_queue(&self, name: &str) -> String {
        let body = serde_json::json!({"name": name, "region": REGION});
        let answer = self.call("POST", "/_sandbox/scheduler/dead-letters", Some(&body));
        answer["arn"].as_str().unwrap_or_else(|| panic!("dead-letter queue: {answer}")).to_owned()
    }

    /// What the queue holds, oldest first: `{"body": …, "attributes": {…}}` each.
    pub fn dead_letters(&self, queue_arn: &str) -> Vec<serde_json::Value> {
        let answer = self.call("GET", &format!("/_sandbox/scheduler/dead-letters?arn={queue_arn}"), None);
        answer["messages"].as_array().cloned().unwrap_or_else(|| panic!("dead letters: {answer}"))
    }

    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk_config())
    }

    /// The URL of the sandbox's webhook `name` (a stand-in for a Slack or Teams webhook).
    pub fn webhook_url(&self, name: &str) -> String {
        format!("{}/_sandbox/webhook/{name}", self.endpoint())
    }

    /// The next answers of webhook `name`, e.g. `[{"status": 429, "retry_after": 1}]`; then 200 again.
    pub fn webhook_answers(&self, name: &str, answers: serde_json::Value) {
        let body = serde_json::json!({"name": name, "answers": answers});
        self.call("POST", "/_sandbox/webhook-answers", Some(&body));
    }

    /// Every JSON body webhook `name` received, oldest first.
    pub fn webhooks(&self, name: &str) -> Vec<serde_json::Value> {
        let answer = self.call("GET", &format!("/_sandbox/webhooks?name={name}"), None);
        answer["received"].as_array().cloned().unwrap_or_default()
    }

    /// A channel's webhook URL as nightshift reads it: an SSM SecureString
    /// under the default prefix, pointing at the sandbox's webhook `name`.
    pub async fn channel(&self, channel: &str, webhook: &str) {
        self.ssm()
            .put_parameter()
            .name(format!("/nightshift/notify/{channel}"))
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .value(self.webhook_url(webhook))
            .overwrite(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("put the parameter of {channel}: {e:?}"));
    }

    /// Holds every answer to `operation` (e.g. `UpdateService`) for `seconds`
    /// before the request is served; 0 turns it off.
    pub fn slow(&self, operation: &str, seconds: f64) {
        let body = serde_json::json!({"operation": operation, "seconds": seconds});
        self.call("POST", "/_sandbox/slow", Some(&body));
    }

    /// Holds each request of `operation` until `count` of them are waiting
    /// (at most ten seconds), then answers them all: functions running at once
    /// that all read before any of them writes.
    pub fn together(&self, operation: &str, count: u32) {
        let body = serde_json::json!({"operation": operation, "count": count, "seconds": 10});
        self.call("POST", "/_sandbox/together", Some(&body));
    }

    /// Moves every version under the prefix `days` into the past.
    pub fn backdate(&self, bucket: &str, prefix: &str, days: f64) -> u64 {
        let body = serde_json::json!({"bucket": bucket, "prefix": prefix, "days": days});
        let answer = self.call("POST", "/_sandbox/backdate", Some(&body));
        answer["moved"].as_u64().unwrap_or_else(|| panic!("backdate failed: {answer}"))
    }

    /// The default VPC's subnet and security group, for Fargate tasks.
    pub fn default_network(&self) -> (String, String) {
        let answer = self.call("GET", &format!("/_sandbox/default-network?region={REGION}"), None);
        let field = |k: &str| answer[k].as_str().unwrap_or_else(|| panic!("default-network: {answer}")).to_owned();
        (field("subnet"), field("security_group"))
    }

    /// The lifecycle hooks waiting to be invoked (ECS strategies', CodeDeploy's AppSpecs): see sandbox/hooks.py.
    pub fn hooks(&self) -> Vec<serde_json::Value> {
        let answer = self.call("GET", "/_sandbox/hooks", None);
        answer["hooks"].as_array().cloned().unwrap_or_else(|| panic!("hooks: {answer}"))
    }

    /// Hands a hook invocation's outcome back: the function's result, or its error.
    pub fn answer_hook(&self, id: &str, outcome: &crate::runtime::Outcome) -> serde_json::Value {
        let body = match outcome {
            crate::runtime::Outcome::Response(result) => serde_json::json!({"id": id, "result": result}),
            other => serde_json::json!({"id": id, "error": format!("{other:?}")}),
        };
        self.call("POST", "/_sandbox/hooks/answer", Some(&body))
    }

    /// Invokes every waiting hook with `function` through the Runtime API, as
    /// ECS and CodeDeploy would, until none waits (waiting out each callback
    /// delay); each hook's payload, the function's outcome and what the sandbox made of it.
    pub fn run_hooks(
        &self,
        function: &mut crate::runtime::FunctionProcess,
    ) -> Vec<(serde_json::Value, crate::runtime::Outcome, serde_json::Value)> {
        let mut ran = Vec::new();
        loop {
            let waiting = self.hooks();
            let Some(next) = waiting
                .iter()
                .min_by(|a, b| a["due_in"].as_f64().unwrap_or(0.0).total_cmp(&b["due_in"].as_f64().unwrap_or(0.0)))
            else {
                return ran;
            };
            let due_in = next["due_in"].as_f64().unwrap_or(0.0);
            if due_in > 0.0 {
                std::thread::sleep(Duration::from_secs_f64(due_in));
            }
            let outcome = function.invoke(&next["payload"]);
            let answered = self.answer_hook(next["id"].as_str().unwrap_or_default(), &outcome);
            ran.push((next["payload"].clone(), outcome, answered));
        }
    }

    /// Keeps every ECS task in the state it is put in (moto advances a task's
    /// state each time it is described, unless told otherwise).
    pub fn pin_task_states(&self) {
        let body =
            serde_json::json!({"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1_000_000}});
        self.call("POST", "/moto-api/state-manager/set-transition", Some(&body));
    }

    /// One CloudWatch operation (its JSON protocol), as the tests' own account: alarms for check suites.
    pub fn cloudwatch(&self, operation: &str, body: &serde_json::Value) -> serde_json::Value {
        let body = body.to_string();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to sandbox");
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        write!(
            stream,
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\n\
             X-Amz-Target: GraniteServiceVersion20100801.{operation}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20261205/{REGION}/monitoring/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write to sandbox");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read from sandbox");
        let (head, json) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        assert!(head.split_whitespace().nth(1).is_some_and(|s| s.starts_with('2')), "{operation}: {response}");
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null)
    }

    /// Stores `content` as a blob of `repository` in `account`'s registry (an
    /// image's config, read for its labels); its digest.
    pub fn put_blob(&self, account: &str, repository: &str, content: &str) -> String {
        let body =
            serde_json::json!({"account": account, "region": REGION, "repository": repository, "content": content});
        self.call("POST", "/_sandbox/ecr/blob", Some(&body))["digest"].as_str().unwrap_or_default().to_owned()
    }

    /// One plain HTTP/1.1 request to the sandbox's own routes; the JSON answer.
    /// Deploys functions (and a stack's outputs) that Lambda's Invoke runs (sandbox/functions.py).
    pub fn register_functions(&self, body: &serde_json::Value) {
        let answer = self.call("POST", "/_sandbox/functions", Some(body));
        assert!(answer.get("error").is_none(), "the sandbox refused the functions: {answer}");
    }

    fn call(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> serde_json::Value {
        let body = body.map(ToString::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to sandbox");
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write to sandbox");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read from sandbox");
        let (head, json) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split_whitespace().nth(1).unwrap_or_default();
        assert!(status.starts_with('2'), "{method} {path}: {response}");
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
