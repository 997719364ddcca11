//! The `nightshift` command against the sandbox, as a new user runs it: the
//! stack "deployed" there (its outputs served by CloudFormation's
//! DescribeStacks, its functions run by Lambda's Invoke through the Runtime
//! API: sandbox/functions.py), the built binary run with credentials from the
//! environment, as the AWS CLI's would be.

use std::process::Command;

use serde_json::{Value, json};

use crate::platform::{SCHEDULE_GROUP, schedule_role};
use crate::runtime::{binary, deployed_env};
use crate::sandbox::{ACCOUNT, REGION, STATE_TABLE, Sandbox};

/// The stack's name, `nightshift`'s default.
pub const STACK: &str = "nightshift";
/// The scale group the stack's scale-to-zero sleeps and wakes.
pub const GROUP: &str = "dagster";

/// A function of the stack: its output, its binary, and its settings.
type Function = (&'static str, &'static str, Vec<(String, String)>);

/// Each function of the stack, with its settings beyond the sandbox's.
fn functions(sandbox: &Sandbox) -> Vec<Function> {
    let with = |extra: &[(&str, &str)]| {
        let mut env = sandbox.function_env();
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        env
    };
    let role = schedule_role();
    vec![
        ("DeployOnPushFunctionName", "deploy-on-push", with(&[])),
        (
            "WatchRolloutsFunctionName",
            "watch-rollouts",
            with(&[("SCHEDULE_GROUP", SCHEDULE_GROUP), ("SCHEDULE_ROLE_ARN", &role)]),
        ),
        ("ScaleToZeroFunctionName", "scale-to-zero", with(&[("CLUSTERS", GROUP), ("SCALE_GROUP", GROUP)])),
        (
            "ResetDataspaceFunctionName",
            "reset-dataspace",
            with(&[
                (
                    "DATASPACE_MANIFEST",
                    &format!("s3://{}/{}", crate::platform::MANIFEST_BUCKET, crate::platform::MANIFEST_KEY),
                ),
                ("DATASPACE_NAME", "mvd"),
            ]),
        ),
    ]
}

/// Deploys the stack into the sandbox: its functions named `nightshift-<function>`, and its outputs.
pub fn deploy(sandbox: &Sandbox) {
    let mut outputs = json!({"StateTableName": STATE_TABLE, "ScaleGroupName": GROUP});
    let mut deployed = serde_json::Map::new();
    for (output, function, env) in functions(sandbox) {
        let name = format!("{STACK}-{function}");
        outputs[output] = json!(name);
        let env: serde_json::Map<String, Value> =
            deployed_env(function, &env, None).into_iter().map(|(k, v)| (k, json!(v))).collect();
        deployed.insert(name, json!({"binary": binary(function), "env": env}));
    }
    sandbox.register_functions(&json!({
        "account": ACCOUNT, "region": REGION, "stack": STACK, "outputs": outputs, "functions": deployed,
    }));
}

/// How a run of the command ended.
#[derive(Debug, Clone)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// The output as JSON (`--json`), or a panic that shows what came instead.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Runs `nightshift <args>` against the sandbox, signed with the tests' own credentials.
pub fn nightshift(sandbox: &Sandbox, args: &[&str]) -> Ran {
    let out = Command::new(binary("nightshift"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", sandbox.endpoint())
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // No profile of this machine's is read.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("run nightshift");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
