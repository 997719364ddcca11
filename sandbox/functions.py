"""Lambda functions and a CloudFormation stack's outputs, as the `nightshift`
command finds and invokes them (moto would run a function in Docker, which
this machine does not have, and knows nothing of SAM's stacks):

    POST /_sandbox/functions  {"account", "region", "stack": "nightshift",
                               "outputs": {"DeployOnPushFunctionName": "nightshift-deploy-on-push", ...},
                               "functions": {"nightshift-deploy-on-push": {"binary": "/path", "env": {...}}}}

registers the functions and the stack. Then:

- CloudFormation `DescribeStacks` (query protocol) answers the stack, CREATE_COMPLETE,
  with its outputs; another stack name is refused as CloudFormation refuses it
  (ValidationError "Stack with id X does not exist").
- Lambda `Invoke` (`POST /2015-03-31/functions/<name or ARN>/invocations`) runs
  the built binary through a Runtime API of its own for that one invocation, as
  Lambda runs a cold function: the answer is the handler's response (200), or
  its error with `X-Amz-Function-Error: Unhandled`, as Lambda gives them. An
  `Event` invocation (`X-Amz-Invocation-Type: Event`) answers 202 and runs in
  the background; `DryRun` answers 204. An unknown function is
  ResourceNotFoundException (404).
"""

import json
import os
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

FUNCTIONS_PATH = "/_sandbox/functions"
INVOKE_PREFIX = "/2015-03-31/functions/"

_lock = threading.Lock()
# (account, region, name) -> {"binary", "env"}
_functions: dict = {}
# (account, region, stack) -> outputs
_stacks: dict = {}


def register(body: dict) -> dict:
    account, region = body["account"], body.get("region", "us-east-1")
    with _lock:
        for name, spec in body.get("functions", {}).items():
            if not os.path.isfile(spec["binary"]):
                raise ValueError(f"{spec['binary']} is not built")
            _functions[(account, region, name)] = {"binary": spec["binary"], "env": dict(spec.get("env", {}))}
        if body.get("stack"):
            _stacks[(account, region, body["stack"])] = dict(body.get("outputs", {}))
    return {"functions": sorted(body.get("functions", {})), "stack": body.get("stack")}


def describe_stacks(account: str, region: str, form: dict) -> tuple[int, str]:
    name = form.get("StackName", "")
    request_id = str(uuid.uuid4())
    with _lock:
        outputs = _stacks.get((account, region, name))
    if outputs is None:
        message = f"Stack with id {name} does not exist" if name else "a StackName is required here"
        return 400, (f'<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error>'
                     f'<Type>Sender</Type><Code>ValidationError</Code><Message>{_xml(message)}</Message>'
                     f'</Error><RequestId>{request_id}</RequestId></ErrorResponse>')
    members = "".join(f"<member><OutputKey>{_xml(k)}</OutputKey><OutputValue>{_xml(v)}</OutputValue></member>"
                      for k, v in sorted(outputs.items()))
    stack_id = f"arn:aws:cloudformation:{region}:{account}:stack/{name}/00000000-0000-0000-0000-000000000001"
    return 200, ('<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">'
                 f'<DescribeStacksResult><Stacks><member><StackName>{_xml(name)}</StackName>'
                 f'<StackId>{stack_id}</StackId><CreationTime>2026-12-01T00:00:00Z</CreationTime>'
                 f'<StackStatus>CREATE_COMPLETE</StackStatus><Outputs>{members}</Outputs></member></Stacks>'
                 f'</DescribeStacksResult><ResponseMetadata><RequestId>{request_id}</RequestId>'
                 '</ResponseMetadata></DescribeStacksResponse>')


def _xml(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def function_name(path: str) -> str:
    """The function a path names: `/2015-03-31/functions/<name, ARN or partial ARN>/invocations`."""
    named = unquote(path[len(INVOKE_PREFIX):].rsplit("/invocations", 1)[0])
    if named.startswith("arn:"):
        # arn:aws:lambda:<region>:<account>:function:<name>[:qualifier]
        parts = named.split(":")
        return parts[6] if len(parts) > 6 else named
    return named.split(":")[0]


# Lambda's limit on a synchronous invocation's request.
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024


def invoke(account: str, region: str, path: str, invocation_type: str, payload: bytes) -> tuple[int, dict, bytes]:
    if invocation_type not in ("RequestResponse", "Event", "DryRun"):
        body = {"message": f"1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to "
                           "satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"}
        return 400, {"x-amzn-ErrorType": "ValidationException"}, json.dumps(body).encode()
    if invocation_type == "RequestResponse" and len(payload) > MAX_SYNC_PAYLOAD:
        body = {"Type": "User", "message": f"Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the "
                                           "InvokeFunction operation"}
        return 413, {"x-amzn-ErrorType": "RequestTooLargeException"}, json.dumps(body).encode()
    name = function_name(path)
    with _lock:
        spec = _functions.get((account, region, name))
    if spec is None:
        arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
        body = {"Type": "User", "Message": f"Function not found: {arn}"}
        return 404, {"x-amzn-ErrorType": "ResourceNotFoundException"}, json.dumps(body).encode()
    try:
        event = json.loads(payload or b"{}")
    except ValueError as err:
        body = {"Type": "User", "Message": f"Could not parse request body into json: {err}"}
        return 400, {"x-amzn-ErrorType": "InvalidRequestContentException"}, json.dumps(body).encode()
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    if invocation_type == "DryRun":
        return 204, {}, b""
    if invocation_type == "Event":
        threading.Thread(target=_run, args=(spec, name, arn, event), daemon=True).start()
        return 202, {}, b""
    outcome = _run(spec, name, arn, event)
    headers = {"X-Amz-Executed-Version": "$LATEST"}
    if "error" in outcome:
        headers["X-Amz-Function-Error"] = "Unhandled"
        return 200, headers, json.dumps(outcome["error"]).encode()
    return 200, headers, json.dumps(outcome["response"]).encode()


def _run(spec: dict, name: str, arn: str, event, timeout: float = 120.0) -> dict:
    """Runs the binary for one invocation, through a Runtime API of its own."""
    request_id = str(uuid.uuid4())
    done = threading.Event()
    outcome: dict = {}
    given = threading.Event()

    class RuntimeApi(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if not self.path.endswith("/runtime/invocation/next"):
                self.send_error(404)
                return
            if given.is_set():
                # One invocation a process: the next waits until the process is stopped.
                done.wait(timeout)
                time.sleep(timeout)
                return
            given.set()
            body = json.dumps(event).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int((time.time() + 60) * 1000)))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", arn)
            self.send_header("Lambda-Runtime-Trace-Id", f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                answer = json.loads(raw or b"null")
            except ValueError:
                answer = raw.decode(errors="replace")
            if self.path.endswith("/response"):
                outcome["response"] = answer
            elif self.path.endswith("/error"):
                outcome["error"] = answer
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if self.path.endswith("/response") or self.path.endswith("/error"):
                done.set()

    server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": os.environ.get("RUST_LOG", "info")}
    env.update(spec["env"])
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "sandbox",
    })
    logs = os.environ.get("NIGHTSHIFT_FUNCTION_LOGS")
    out = open(os.path.join(logs, f"{name}.log"), "ab") if logs else subprocess.DEVNULL
    process = subprocess.Popen([spec["binary"]], env=env, stdout=out, stderr=out)
    started = time.monotonic()
    try:
        while not done.wait(0.05):
            if process.poll() is not None:
                outcome.setdefault("error", {"errorType": "Runtime.ExitError",
                                             "errorMessage": f"the function exited (status {process.returncode}) "
                                                             "before it answered"})
                break
            if time.monotonic() - started > timeout:
                outcome["error"] = {"errorType": "Sandbox.Timedout",
                                    "errorMessage": f"Task timed out after {timeout:.2f} seconds"}
                break
    finally:
        process.kill()
        process.wait()
        server.shutdown()
        server.server_close()
        if out is not subprocess.DEVNULL:
            out.close()
    return outcome
