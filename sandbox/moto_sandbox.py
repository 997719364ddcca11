#!/usr/bin/env python3
"""nightshift's local AWS: moto's server, plus one route moto lacks.

S3 will not let a client set an object's LastModified, yet expiring logs is all
about old objects. This server runs moto in-process and adds

    POST /_sandbox/backdate  {"bucket": "b", "prefix": "p/", "days": 40}

which moves every version and delete marker under the prefix `days` into the
past, so the functions see truly old objects through the ordinary S3 API, and

    GET /_sandbox/default-network?region=us-east-1

which answers {"subnet": ..., "security_group": ...} of the default VPC, for
starting Fargate tasks (run-task) without an EC2 client.

    POST /_sandbox/slow  {"operation": "UpdateService", "seconds": 1.5}

which holds every answer to that operation (by X-Amz-Target's operation name)
for that long before moto sees the request, so tests can pin down how two
functions running at once interleave (0 seconds turns it off), and

    POST /_sandbox/fail  {"operation": "GetParameter", "answers": [{"status": 400, "type": "ThrottlingException"}, {"status": 503}]}

which answers the next requests of that operation (a JSON-protocol one by
X-Amz-Target, or CreateSchedule) with those errors, in order, then as usual:
AWS's throttling and 5xx answers, which clients must try again, and

    POST /_sandbox/together  {"operation": "BatchGetDeploymentGroups", "count": 2, "seconds": 10}

which holds each request of that operation until `count` of them are waiting
(or `seconds` have passed), then lets them all through: two functions that
both read before either writes, whatever else slows one of them down, and

    POST /_sandbox/codedeploy/end  {"deployment": "d-ABCDEFGHI", "status": "Succeeded"}

which ends a CodeDeploy deployment as CodeDeploy would (see codedeploy.py), and

    POST /_sandbox/ecs/rollout  {"cluster": "shop", "service": "api", "outcome": "FAILED"}

which ends a service's ECS rollout (COMPLETED or FAILED, then the circuit
breaker's rollback when the service has it) as ECS would (see ecs_rollouts.py), and

    POST /_sandbox/time/pass  {"minutes": 31}
    GET  /_sandbox/scheduler/schedules

which let time pass for ECS deployments (and the services' tasks: ecs_tasks.py) and EventBridge Scheduler schedules,
then run the one-time schedules due and answer their targets for the caller
to invoke; and list the schedules (see scheduler.py).

    GET  /_sandbox/hooks
    POST /_sandbox/hooks/answer  {"id": "...", "result": {...}}

which hand the lifecycle hooks of ECS's BLUE_GREEN, CANARY and LINEAR rollouts
and of CodeDeploy's AppSpecs to the caller to invoke, and take back what the
function returned (see hooks.py); CodeDeploy's PutLifecycleEventHookExecutionStatus
and CloudWatch's DescribeAlarmHistory (cloudwatch.py) are answered here.

ECR serves another account's repository only as its repository policy allows,
and keeps the blobs an image's config is read from (see ecr_registry.py):

    POST /_sandbox/ecr/blob  {"account", "region", "repository", "content"}

It is also the webhook receiver of Slack and Teams channels:

    POST /_sandbox/webhook/<name>      records the JSON it was sent, answers 200
    POST /_sandbox/webhook-answers     {"name": "<name>", "answers": [{"status": 429, "retry_after": 1}, ...]}
                                       the next answers for <name>, in order (then 200 again)
    GET  /_sandbox/webhooks?name=<name>   {"received": [<each JSON body>, ...]}

It is as strict as AWS where moto is lenient (see strict.py): ECS,
Application Auto Scaling, CodeDeploy and SSM requests are checked against the
published API models; ECR keeps an image, untagged, when its tag moves to another image (moto
forgets it), and records push times to the microsecond (moto: whole seconds),
as ECR does; an image's digest is the SHA-256 of its manifest, as ECR's is;
S3's ListObjectVersions resumes after a KeyMarker whose key is gone, as S3
does (moto drops the next key's first version); CodeDeploy takes one
deployment at a time per group and answers BatchGetDeploymentGroups, and ECS
refuses a new task definition for a CODE_DEPLOY service (codedeploy.py); ECS
keeps a service's deployment history (ListServiceDeployments,
DescribeServiceDeployments, DescribeServiceRevisions: ecs_rollouts.py);
EventBridge Scheduler checks CreateSchedule as AWS does (scheduler.py); and a
signed JSON-protocol or Scheduler request whose X-Amz-Date is more than 15
minutes off the sandbox's clock is refused as AWS refuses it
(InvalidSignatureException, "Signature expired: …" or "Signature not yet
current: …"), with the sandbox's time in the answer's Date header (moto checks
no signature at all), so a client that corrects a skewed clock can be tested.

Another account is one step away, as in AWS, by assuming a role in it:

    POST /_sandbox/assume-role  {"role_arn": "arn:aws:iam::210987654321:role/x"}

answers STS AssumeRole's credentials ({"access_key_id", "secret_access_key",
"session_token"}; "session" names the session); moto acts in the role's
account for requests signed with them. Regions are moto's own: a request acts
in the region its signature names. Between accounts the sandbox checks what
moto does not (accounts.py, events.py, ecr_registry.py): STS AssumeRole
against the role's trust policy, a role made from the template (the reader
role) against its own policies, ECR reads against the repository policy, and
events forwarded to another account's bus against that bus's policy:

    POST /_sandbox/stack   {"account", "template", "parameters"}
    GET  /_sandbox/events?account=<id>&region=<region>

make a stack's cross-account parts from the template, and list what an
account's default bus holds.

It starts with the stack's state table in us-east-1, as the template makes it
(`StateTable`: key `pk`, sort key `sk`, on demand, deletion protection on):
moto's DynamoDB, its requests checked against DynamoDB's model as the others.

With NIGHTSHIFT_REQUEST_LOG set to a folder, it writes there what IAM must
allow for each request a function signed (see iam_requests.py), for the IAM
proof of `make test`.

It also answers one service's requests one at a time (the service named in the
request's SigV4 credential scope). moto's backends are not thread-safe: a
ListObjectVersions that runs while a DeleteObjects changes the same bucket
fails with a 500 that S3 never sends, and the SDK's retries of it would then
be counted as the function's requests.

It binds 127.0.0.1 on the given port (0 picks a free one) and prints one line,
`READY <port>`, once it accepts connections. It stops on SIGTERM or SIGINT, or
when its standard input closes if started with --exit-on-stdin-close (so a
test that dies cannot leave it behind).
"""

import argparse
import datetime
import hashlib
import json
import re
import io
import os
import signal
import sys
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import s3_backends
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

import accounts
import cloudwatch
import codedeploy
import events
import ecr_registry
import functions
import ecs_rollouts
import hooks
import iam_requests
import scheduler
import strict

def _ecs_container_numbers_as_strings() -> None:
    """moto answers a task's containers[].cpu and .memory as numbers; ECS (and so
    the Rust SDK, which then refuses the whole answer) has them as strings."""
    from moto.ecs import models

    original = models.Container.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        for field in ("cpu", "memory"):
            value = getattr(self, field, None)
            if value is not None:
                setattr(self, field, str(value))

    models.Container.__init__ = init


_ecs_container_numbers_as_strings()


def _ecs_services_keep_their_deployment_configuration() -> None:
    """ECS keeps a service's deploymentConfiguration from CreateService, with
    its defaults (200 %, 100 %, the circuit breaker off); moto drops it, so an
    update that lost the team's settings would go unseen."""
    from moto.ecs import responses

    original = responses.EC2ContainerServiceResponse.create_service

    def create_service(self):
        given = self._get_param("deploymentConfiguration") or {}
        result = original(self)
        name = self._get_param("serviceName")
        cluster = self._get_param("cluster", "default")
        service = self.ecs_backend._get_service(cluster, name)
        service.deployment_configuration = {
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "deploymentCircuitBreaker": {"enable": False, "rollback": False},
            **given,
        }
        return result

    responses.EC2ContainerServiceResponse.create_service = create_service


_ecs_services_keep_their_deployment_configuration()


def _ecr_keeps_images_whose_tag_moves() -> None:
    """ECR moves a tag to the newly pushed image and keeps the image it left,
    untagged; moto deletes that image. ECR's push times have sub-second
    precision; moto's are whole seconds, so two pushes in one second tie."""
    from moto.ecr import models

    original_init = models.Image.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.image_pushed_at = datetime.datetime.now(datetime.timezone.utc).timestamp()

    models.Image.__init__ = init

    original_remove_tag = models.Image.remove_tag

    def remove_tag(self, tag):
        original_remove_tag(self, tag)
        if not self.image_tags:
            self.image_tag = None

    models.Image.remove_tag = remove_tag

    original_put = models.ECRBackend.put_image

    def put_image(self, repository_name, image_manifest, image_tag, image_manifest_mediatype=None, digest=None):
        actual = "sha256:" + hashlib.sha256(image_manifest.encode("utf-8")).hexdigest()
        if digest and digest != actual:
            from moto.core.exceptions import JsonRESTError

            raise JsonRESTError(
                "ImageDigestDoesNotMatchException",
                f"Invalid parameter at 'imageDigest' failed to satisfy constraint: '{digest}' is not {actual}",
            )
        repository = self.repositories.get(repository_name)
        left = []
        if repository is not None and image_tag and repository.image_tag_mutability == "MUTABLE":
            left = [i for i in repository.images if image_tag in i.image_tags and i.image_manifest != image_manifest]
            for image in left:
                repository.images.remove(image)
        try:
            pushed = original_put(self, repository_name, image_manifest, image_tag, image_manifest_mediatype, digest)
        finally:
            for image in left:
                image.remove_tag(image_tag)
                repository.images.insert(0, image)
        # ECR puts "ECR Image Action" on the account's default bus for every successful push.
        detail = {"result": "SUCCESS", "repository-name": repository_name, "image-digest": actual,
                  "action-type": "PUSH"}
        if image_tag:
            detail["image-tag"] = image_tag
        if image_manifest_mediatype:
            detail["manifest-media-type"] = image_manifest_mediatype
        events.emit(self.account_id, self.region_name, "aws.ecr", "ECR Image Action", detail)
        return pushed

    models.ECRBackend.put_image = put_image

    # ECR's digest is the SHA-256 of the manifest as pushed; moto hashes the layers' digests.
    def create_digest(self):
        self._image_digest = "sha256:" + hashlib.sha256(self.image_manifest.encode("utf-8")).hexdigest()

    models.Image._create_digest = create_digest


_ecr_keeps_images_whose_tag_moves()


def _s3_key_marker_as_s3_reads_it() -> None:
    """ListObjectVersions with a KeyMarker and no VersionIdMarker lists the keys
    after the marker, as S3 does. moto instead drops the first version at or
    after it: the first version of the next key when the marker's key is gone,
    and keeps the marker key's other versions."""
    from moto.s3 import models

    original = models.S3Backend.list_object_versions

    def list_object_versions(self, bucket_name, delimiter=None, key_marker=None, max_keys=1000, prefix="",
                             version_id_marker=None):
        if key_marker is not None and not version_id_marker:
            bucket = self.get_bucket(bucket_name)
            before = [v for _, versions in bucket.keys.iterlists() for v in versions if v.name <= key_marker]
            if not before:
                key_marker = None
            else:
                # The last entry in listing order (by name, newest first) at or before the marker.
                last = max(before, key=lambda v: (v.name, -models.unix_time_millis(v.last_modified)))
                key_marker, version_id_marker = last.name, last.version_id
        return original(self, bucket_name, delimiter, key_marker, max_keys, prefix, version_id_marker)

    models.S3Backend.list_object_versions = list_object_versions


_s3_key_marker_as_s3_reads_it()

BACKDATE_PATH = "/_sandbox/backdate"
NETWORK_PATH = "/_sandbox/default-network"
SLOW_PATH = "/_sandbox/slow"
TOGETHER_PATH = "/_sandbox/together"
FAIL_PATH = "/_sandbox/fail"
ASSUME_PATH = "/_sandbox/assume-role"
WEBHOOK_PREFIX = "/_sandbox/webhook/"
ACCOUNT = "123456789012"


def backdate(bucket_name: str, prefix: str, days: float) -> int:
    """Moves every version under the prefix `days` back; returns how many moved."""
    if bucket_name not in s3_backends.bucket_accounts:
        raise KeyError(f"no bucket named {bucket_name!r}")
    partition, account = s3_backends.bucket_accounts[bucket_name]
    bucket = s3_backends[account][partition].get_bucket(bucket_name)
    delta = datetime.timedelta(days=days)
    moved = 0
    for name, versions in bucket.keys.iterlists():
        if not name.startswith(prefix):
            continue
        for version in versions:
            version.last_modified = version.last_modified - delta
            moved += 1
    return moved


def ecs_tag_keys(arn: str) -> list[str]:
    """The tag keys an ECS resource carries now (none when it is unknown)."""
    from moto.ecs.models import ecs_backends

    parts = arn.split(":")
    if len(parts) < 6:
        return []
    try:
        tags = ecs_backends[parts[4]][parts[3]].list_tags_for_resource(arn) or []
    except Exception:  # an unknown resource: moto answers that itself
        return []
    return [t["key"] for t in tags]


def default_network(region: str) -> dict:
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[ACCOUNT][region]
    subnet = next(s for s in ec2.describe_subnets() if s.default_for_az)
    group = next(g for g in ec2.describe_security_groups() if g.name == "default" and g.vpc_id == subnet.vpc_id)
    return {"subnet": subnet.id, "security_group": group.id}


SIGNED_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
SIGNED_REGION = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/[^/]+/aws4_request")


def signed_region(authorization: str) -> str:
    """The region a SigV4-signed request is for; us-east-1 when unsigned."""
    found = SIGNED_REGION.search(authorization)
    return found.group(1) if found else "us-east-1"


def signed_service(authorization: str) -> str:
    """The service a SigV4-signed request is for ("s3", "ecs"); "" when unsigned."""
    found = SIGNED_SERVICE.search(authorization)
    return found.group(1) if found else ""


class SandboxApp:
    def __init__(self) -> None:
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.locks: dict[str, threading.Lock] = {}
        self.locks_lock = threading.Lock()
        self.slow: dict[str, float] = {}
        # operation -> the next answers to give it, in order (POST /_sandbox/fail)
        self.failures: dict[str, list] = {}
        self.failures_lock = threading.Lock()
        # operation -> [count wanted, seconds at most, requests arrived]
        self.together: dict[str, list] = {}
        self.together_changed = threading.Condition()
        self.webhooks: dict[str, list] = {}
        self.webhook_answers: dict[str, list] = {}
        self.webhooks_lock = threading.Lock()

    def webhook(self, environ, start_response):
        """The local Slack and Teams webhooks (see the module's text)."""
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD")
        request = Request(environ)
        if path.startswith(WEBHOOK_PREFIX) and method == "POST":
            name = path[len(WEBHOOK_PREFIX):]
            try:
                body = json.loads(request.get_data() or b"null")
            except ValueError:
                return Response("invalid_payload", 400)(environ, start_response)
            with self.webhooks_lock:
                self.webhooks.setdefault(name, []).append(body)
                queued = self.webhook_answers.get(name) or []
                answer = queued.pop(0) if queued else {"status": 200}
            headers = {"Retry-After": str(answer["retry_after"])} if "retry_after" in answer else {}
            return Response("ok", int(answer["status"]), headers=headers)(environ, start_response)
        if path == "/_sandbox/webhook-answers" and method == "POST":
            body = json.loads(request.get_data() or b"{}")
            with self.webhooks_lock:
                self.webhook_answers[body["name"]] = list(body.get("answers", []))
            return Response("{}", 200, mimetype="application/json")(environ, start_response)
        name = request.args.get("name", "")
        with self.webhooks_lock:
            received = list(self.webhooks.get(name, []))
        return Response(json.dumps({"received": received}), 200, mimetype="application/json")(environ, start_response)

    def refused_in_time(self, environ, target: str, service: str):
        """A signature out of AWS's 15-minute window, or an injected failure: the answer; else None."""
        rest = service == "scheduler"
        operation = target.rpartition(".")[2] if target else (
            "CreateSchedule" if environ.get("REQUEST_METHOD") == "POST" else "")
        now = datetime.datetime.now(datetime.timezone.utc)
        date = {"Date": now.strftime("%a, %d %b %Y %H:%M:%S GMT")}

        def answer(status: int, kind: str, message: str):
            if rest:
                headers = {**date, "x-amzn-ErrorType": kind}
                return Response(json.dumps({"Message": message}), status, headers=headers, mimetype="application/json")
            return Response(json.dumps({"__type": kind, "message": message}), status, headers=date,
                            mimetype="application/x-amz-json-1.1")

        signed = environ.get("HTTP_X_AMZ_DATE", "")
        try:
            at = datetime.datetime.strptime(signed, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            at = None
        if at is not None and abs((now - at).total_seconds()) > 15 * 60:
            stamp = lambda t: t.strftime("%Y%m%dT%H%M%SZ")
            window = datetime.timedelta(minutes=15)
            if at < now:
                message = f"Signature expired: {signed} is now earlier than {stamp(now - window)} ({stamp(now)} - 15 min.)"
            else:
                message = f"Signature not yet current: {signed} is still later than {stamp(now + window)} ({stamp(now)} + 15 min.)"
            return answer(403 if rest else 400, "InvalidSignatureException", message)
        with self.failures_lock:
            queued = self.failures.get(operation) or []
            injected = queued.pop(0) if queued else None
        if injected is not None:
            kind = injected.get("type", "ServiceUnavailable" if injected.get("status", 503) >= 500 else "ThrottlingException")
            return answer(int(injected.get("status", 503)), kind, injected.get("message", "injected by the sandbox"))
        return None

    def wait_together(self, operation: str) -> None:
        """Holds the request until the operation's gathering is complete (see the module's text)."""
        with self.together_changed:
            gathering = self.together.get(operation)
            if gathering is None:
                return
            gathering[2] += 1
            if gathering[2] >= gathering[0]:
                del self.together[operation]
                self.together_changed.notify_all()
                return
            self.together_changed.wait_for(lambda: operation not in self.together, timeout=gathering[1])
            self.together.pop(operation, None)

    def lock_for(self, service: str) -> threading.Lock:
        with self.locks_lock:
            return self.locks.setdefault(service, threading.Lock())

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == BACKDATE_PATH and environ.get("REQUEST_METHOD") == "POST":
            request = Request(environ)
            try:
                body = json.loads(request.get_data() or b"{}")
                moved = backdate(body["bucket"], body.get("prefix", ""), float(body["days"]))
                response = Response(json.dumps({"moved": moved}), 200, mimetype="application/json")
            except (KeyError, ValueError, TypeError) as err:
                response = Response(json.dumps({"error": str(err)}), 400, mimetype="application/json")
            return response(environ, start_response)
        if environ.get("PATH_INFO") == NETWORK_PATH:
            region = Request(environ).args.get("region", "us-east-1")
            response = Response(json.dumps(default_network(region)), 200, mimetype="application/json")
            return response(environ, start_response)
        if environ.get("PATH_INFO") == SLOW_PATH and environ.get("REQUEST_METHOD") == "POST":
            body = json.loads(Request(environ).get_data() or b"{}")
            self.slow[body["operation"]] = float(body.get("seconds", 0))
            return Response("{}", 200, mimetype="application/json")(environ, start_response)
        if environ.get("PATH_INFO") == ASSUME_PATH and environ.get("REQUEST_METHOD") == "POST":
            from moto.sts.models import sts_backends

            body = json.loads(Request(environ).get_data() or b"{}")
            role = sts_backends[ACCOUNT]["global"].assume_role(
                region_name="us-east-1", role_session_name=body.get("session", "sandbox"), role_arn=body["role_arn"],
                policy="", duration=3600, external_id="")
            answer = {"access_key_id": role.access_key_id, "secret_access_key": role.secret_access_key,
                      "session_token": role.session_token}
            return Response(json.dumps(answer), 200, mimetype="application/json")(environ, start_response)
        if environ.get("PATH_INFO") == FAIL_PATH and environ.get("REQUEST_METHOD") == "POST":
            body = json.loads(Request(environ).get_data() or b"{}")
            with self.failures_lock:
                self.failures[body["operation"]] = list(body.get("answers", []))
            return Response("{}", 200, mimetype="application/json")(environ, start_response)
        if environ.get("PATH_INFO") == TOGETHER_PATH and environ.get("REQUEST_METHOD") == "POST":
            body = json.loads(Request(environ).get_data() or b"{}")
            with self.together_changed:
                self.together[body["operation"]] = [int(body.get("count", 2)), float(body.get("seconds", 10)), 0]
            return Response("{}", 200, mimetype="application/json")(environ, start_response)
        if environ.get("PATH_INFO", "").startswith(ecr_registry.BLOB_PATH):
            return self.ecr_blob(environ, start_response)
        if environ.get("PATH_INFO", "").startswith("/_sandbox/webhook"):
            return self.webhook(environ, start_response)
        if environ.get("PATH_INFO") == ecs_rollouts.ROLLOUT_PATH and environ.get("REQUEST_METHOD") == "POST":
            body = json.loads(Request(environ).get_data() or b"{}")
            try:
                with self.lock_for("ecs"):
                    ended = ecs_rollouts.end_rollout(body.get("account", ACCOUNT), body.get("region", "us-east-1"),
                                                     body["cluster"],
                                                     body["service"], body.get("outcome", "COMPLETED"))
                response = Response(json.dumps(ended, default=str), 200, mimetype="application/json")
            except (KeyError, ValueError) as err:
                response = Response(json.dumps({"error": str(err)}), 400, mimetype="application/json")
            return response(environ, start_response)
        if environ.get("PATH_INFO") == codedeploy.END_PATH and environ.get("REQUEST_METHOD") == "POST":
            body = json.loads(Request(environ).get_data() or b"{}")
            try:
                with self.lock_for("codedeploy"), self.lock_for("ecs"):
                    ended = codedeploy.end(ACCOUNT, body["deployment"], body.get("status", "Succeeded"))
                response = Response(json.dumps(ended), 200, mimetype="application/json")
            except (KeyError, ValueError) as err:
                response = Response(json.dumps({"error": str(err)}), 400, mimetype="application/json")
            return response(environ, start_response)
        if environ.get("PATH_INFO") == hooks.PENDING_PATH:
            return Response(json.dumps({"hooks": hooks.pending()}), 200, mimetype="application/json")(
                environ, start_response)
        if environ.get("PATH_INFO") == hooks.ANSWER_PATH and environ.get("REQUEST_METHOD") == "POST":
            body = json.loads(Request(environ).get_data() or b"{}")
            try:
                with self.lock_for("codedeploy"), self.lock_for("ecs"):
                    answered = hooks.answer(body, ecs_rollouts.end_by_hook,
                                            lambda d, status: codedeploy.end(ACCOUNT, d, status))
                response = Response(json.dumps(answered, default=str), 200, mimetype="application/json")
            except (KeyError, ValueError) as err:
                response = Response(json.dumps({"error": str(err)}), 400, mimetype="application/json")
            return response(environ, start_response)
        if environ.get("PATH_INFO", "") in (scheduler.PASS_PATH, scheduler.SCHEDULES_PATH, scheduler.FAILED_PATH,
                                            scheduler.DEAD_LETTERS_PATH):
            return self.scheduler(environ, start_response)
        if environ.get("PATH_INFO") == events.EVENTS_PATH:
            request = Request(environ)
            answer = events.bus(request.args.get("account", ACCOUNT), request.args.get("region", "us-east-1"))
            return Response(json.dumps(answer), 200, mimetype="application/json")(environ, start_response)
        if environ.get("PATH_INFO") == accounts.STACK_PATH and environ.get("REQUEST_METHOD") == "POST":
            body = json.loads(Request(environ).get_data() or b"{}")
            try:
                with self.lock_for("iam"), self.lock_for("ssm"), self.lock_for("dynamodb"):
                    made = accounts.deploy(body["account"], body.get("region", "us-east-1"),
                                           body.get("template", "template.yaml"), body.get("parameters", {}),
                                           create_state_table_in)
                response = Response(json.dumps(made), 200, mimetype="application/json")
            except (KeyError, ValueError) as err:
                response = Response(json.dumps({"error": str(err)}), 400, mimetype="application/json")
            return response(environ, start_response)
        if environ.get("PATH_INFO") == functions.FUNCTIONS_PATH and environ.get("REQUEST_METHOD") == "POST":
            body = json.loads(Request(environ).get_data() or b"{}")
            try:
                response = Response(json.dumps(functions.register(body)), 200, mimetype="application/json")
            except (KeyError, ValueError) as err:
                response = Response(json.dumps({"error": str(err)}), 400, mimetype="application/json")
            return response(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        service = signed_service(environ.get("HTTP_AUTHORIZATION", ""))
        key = re.search(r"Credential=([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
        account = accounts.caller(key.group(1))[0] if key else ACCOUNT
        if service == "lambda" and environ.get("PATH_INFO", "").startswith(functions.INVOKE_PREFIX) \
                and environ.get("PATH_INFO", "").endswith("/invocations") and environ.get("REQUEST_METHOD") == "POST":
            region = signed_region(environ.get("HTTP_AUTHORIZATION", ""))
            status, headers, body = functions.invoke(account, region, environ["PATH_INFO"],
                                                     environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse"),
                                                     Request(environ).get_data())
            return Response(body, status, headers=headers, mimetype="application/json")(environ, start_response)
        if service == "cloudformation" and environ.get("REQUEST_METHOD") == "POST":
            request = Request(environ)
            raw_form = request.get_data()
            from urllib.parse import parse_qs
            form = {k: v[0] for k, v in parse_qs(raw_form.decode()).items()}
            if form.get("Action") == "DescribeStacks":
                region = signed_region(environ.get("HTTP_AUTHORIZATION", ""))
                status, body = functions.describe_stacks(account, region, form)
                return Response(body, status, mimetype="text/xml")(environ, start_response)
            environ["wsgi.input"] = io.BytesIO(raw_form)
            environ["CONTENT_LENGTH"] = str(len(raw_form))
        raw = None
        if target or service == "scheduler" or os.environ.get("NIGHTSHIFT_REQUEST_LOG"):
            raw = Request(environ).get_data()
            environ["wsgi.input"] = io.BytesIO(raw)
            environ["CONTENT_LENGTH"] = str(len(raw))
            iam_requests.record(environ, raw)
        assumed = accounts.assumed(key.group(1)) if key else None
        if assumed is not None and not assumed[2] in accounts.FUNCTION_ROLES:
            if raw is None:
                raw = Request(environ).get_data()
                environ["wsgi.input"] = io.BytesIO(raw)
                environ["CONTENT_LENGTH"] = str(len(raw))
            found = iam_requests.authorizations(environ, raw)
            with self.lock_for("iam"):
                why = accounts.role_refusal(assumed[1], found[1]) if found else None
            if why is not None:
                return Response(json.dumps({"__type": "AccessDeniedException", "message": why}), 400,
                                mimetype="application/x-amz-json-1.1")(environ, start_response)
        if target or service == "scheduler":
            refused = self.refused_in_time(environ, target, service)
            if refused is not None:
                return refused(environ, start_response)
        if service == "sts" and key:
            refused = self.sts_refusal(environ, key.group(1), raw)
            if refused is not None:
                return refused(environ, start_response)
        if target == "AWSEvents.PutEvents":
            refused = strict.refusal(target, raw, ecs_tag_keys)
            if refused:
                status, kind, message = refused
                return Response(json.dumps({"__type": kind, "message": message}), status,
                                mimetype="application/x-amz-json-1.1")(environ, start_response)
            status, answer = events.put_events(account, signed_region(environ.get("HTTP_AUTHORIZATION", "")),
                                               json.loads(raw or b"{}"))
            return Response(json.dumps(answer), status, mimetype="application/x-amz-json-1.1")(environ, start_response)
        if target.startswith("AmazonEC2ContainerRegistry_V20150921."):
            answered = self.ecr_across_accounts(environ, start_response, account, target.rpartition(".")[2], raw)
            if answered is not None:
                return answered
        if target:
            refused = strict.refusal(target, raw, ecs_tag_keys)
            if refused:
                status, kind, message = refused
                body = json.dumps({"__type": kind, "message": message})
                return Response(body, status, mimetype="application/x-amz-json-1.1")(environ, start_response)
            operation = target.rpartition(".")[2]
            delay = self.slow.get(operation, 0)
            if delay > 0:
                time.sleep(delay)
            self.wait_together(operation)
            if operation == "PutLifecycleEventHookExecutionStatus":
                with self.lock_for("codedeploy"), self.lock_for("ecs"):
                    status, answer = hooks.put_status(
                        json.loads(raw or b"{}"), lambda d, s: codedeploy.end(ACCOUNT, d, s),
                        lambda d: codedeploy.exists(ACCOUNT, d))
                return Response(json.dumps(answer), status, mimetype="application/x-amz-json-1.1")(
                    environ, start_response)
            if operation == "DescribeAlarmHistory":
                region = signed_region(environ.get("HTTP_AUTHORIZATION", ""))
                with self.lock_for("monitoring"):
                    status, answer = cloudwatch.answer(account, region, json.loads(raw or b"{}"))
                return Response(json.dumps(answer), status, mimetype="application/x-amz-json-1.0")(
                    environ, start_response)
            if service == "ecs" and operation in ecs_rollouts.HISTORY_OPERATIONS:
                region = signed_region(environ.get("HTTP_AUTHORIZATION", ""))
                with self.lock_for("ecs"):
                    status, answer = ecs_rollouts.answer(account, region, operation, json.loads(raw or b"{}"))
                body = json.dumps(answer, default=ecs_rollouts.json_default)
                return Response(body, status, mimetype="application/x-amz-json-1.1")(
                    environ, start_response)
        with self.lock_for(service):
            if service == "scheduler":
                region = signed_region(environ.get("HTTP_AUTHORIZATION", ""))
                refused = scheduler.refusal(ACCOUNT, region, environ.get("REQUEST_METHOD", ""),
                                            environ.get("PATH_INFO", ""), raw)
                if refused:
                    status, kind, message = refused
                    headers = {"x-amzn-ErrorType": kind}
                    return Response(json.dumps({"Message": message}), status, headers=headers,
                                    mimetype="application/json")(environ, start_response)
            return self.moto(environ, start_response)

    def sts_refusal(self, environ, access_key: str, raw):
        """AssumeRole of a role whose trust policy does not let the caller: IAM's refusal (accounts.py)."""
        from urllib.parse import parse_qs

        if raw is None:
            raw = Request(environ).get_data()
            environ["wsgi.input"] = io.BytesIO(raw)
            environ["CONTENT_LENGTH"] = str(len(raw))
        form = parse_qs(raw.decode("utf-8", "replace"))
        if form.get("Action", [""])[0] != "AssumeRole":
            return None
        _, principal, _ = accounts.caller(access_key)
        with self.lock_for("iam"):
            why = accounts.trust_refusal(principal, form.get("RoleArn", [""])[0])
        if why is None:
            return None
        body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                f'<Code>AccessDenied</Code><Message>{why}</Message></Error><RequestId>sandbox</RequestId></ErrorResponse>')
        return Response(body, 403, mimetype="text/xml")

    def ecr_blob(self, environ, start_response):
        """Stores a blob (POST), or answers one by its download URL (GET): see ecr_registry.py."""
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "POST" and path == ecr_registry.BLOB_PATH:
            body = json.loads(Request(environ).get_data() or b"{}")
            digest = ecr_registry.put_blob(body.get("account", ACCOUNT), body.get("region", "us-east-1"),
                                           body["repository"], body["content"])
            return Response(json.dumps({"digest": digest}), 200, mimetype="application/json")(environ, start_response)
        found = ecr_registry.blob(path[len(ecr_registry.BLOB_PATH) + 1:])
        if found is None:
            return Response("<Error><Code>NoSuchKey</Code></Error>", 404, mimetype="application/xml")(
                environ, start_response)
        return Response(found, 200, mimetype="application/octet-stream")(environ, start_response)

    def ecr_across_accounts(self, environ, start_response, caller: str, operation: str, raw: bytes):
        """Another account's registry, as its repository policy allows (see ecr_registry.py), and
        GetDownloadUrlForLayer; the answer, or None to let moto answer (in the registry's account)."""
        region = signed_region(environ.get("HTTP_AUTHORIZATION", ""))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return None
        with self.lock_for("ecr"):
            registry, refused = ecr_registry.check(caller, region, operation, body)
            if refused is None and operation == "GetDownloadUrlForLayer":
                base = f"http://{environ.get('HTTP_HOST', '127.0.0.1')}"
                refused = ecr_registry.download_url(base, registry or caller, region, body)
                status, answer = refused
                return Response(json.dumps(answer), status, mimetype="application/x-amz-json-1.1")(
                    environ, start_response)
        if refused is not None:
            status, kind, message = refused
            return Response(json.dumps({"__type": kind, "message": message}), status,
                            mimetype="application/x-amz-json-1.1")(environ, start_response)
        if registry is not None:
            environ["HTTP_X_MOTO_ACCOUNT_ID"] = registry
        return None

    def scheduler(self, environ, start_response):
        """Time passing for EventBridge Scheduler (see scheduler.py)."""
        request = Request(environ)
        region = request.args.get("region", "us-east-1")
        try:
            with self.lock_for("scheduler"), self.lock_for("ecs"):
                if environ.get("PATH_INFO") == scheduler.PASS_PATH and environ.get("REQUEST_METHOD") == "POST":
                    body = json.loads(request.get_data() or b"{}")
                    minutes = float(body["minutes"])
                    from moto.ecs.models import ecs_backends

                    for aged in list(ecs_backends.keys()):
                        ecs_rollouts.age(aged, minutes)
                    scheduler.shift(ACCOUNT, minutes)
                    answer = {"fired": scheduler.fire(ACCOUNT, body.get("region", region))}
                elif environ.get("PATH_INFO") == scheduler.SCHEDULES_PATH:
                    answer = {"schedules": scheduler.schedules(ACCOUNT, region)}
                elif environ.get("PATH_INFO") == scheduler.FAILED_PATH and environ.get("REQUEST_METHOD") == "POST":
                    body = json.loads(request.get_data() or b"{}")
                    answer = scheduler.failed(ACCOUNT, body.get("region", region), body["group"], body["name"],
                                              body.get("error", ""))
                elif environ.get("PATH_INFO") == scheduler.DEAD_LETTERS_PATH and environ.get("REQUEST_METHOD") == "POST":
                    body = json.loads(request.get_data() or b"{}")
                    answer = scheduler.dead_letter_queue(ACCOUNT, body.get("region", region), body["name"])
                elif environ.get("PATH_INFO") == scheduler.DEAD_LETTERS_PATH:
                    answer = {"messages": scheduler.dead_letters(request.args["arn"])}
                else:
                    return Response("{}", 404, mimetype="application/json")(environ, start_response)
            response = Response(json.dumps(answer, default=str), 200, mimetype="application/json")
        except (KeyError, ValueError) as err:
            response = Response(json.dumps({"error": str(err)}), 400, mimetype="application/json")
        return response(environ, start_response)


STATE_TABLE = "StateTable"


def create_state_table(region: str = "us-east-1") -> None:
    """The template's StateTable, in moto's DynamoDB."""
    create_state_table_in(ACCOUNT, region)


def create_state_table_in(account: str, region: str) -> None:
    """The template's StateTable in an account's DynamoDB (once)."""
    from moto.dynamodb.models import dynamodb_backends

    if STATE_TABLE in dynamodb_backends[account][region].tables:
        return
    dynamodb_backends[account][region].create_table(
        STATE_TABLE,
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        throughput=None,
        attr=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        global_indexes=None,
        indexes=None,
        streams=None,
        billing_mode="PAY_PER_REQUEST",
        sse_specification={"Enabled": True},
        tags=[],
        deletion_protection_enabled=True,
        warm_throughput=None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--exit-on-stdin-close", action="store_true")
    args = parser.parse_args()

    create_state_table()
    server = make_server("127.0.0.1", args.port, SandboxApp(), threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    signal.signal(signal.SIGINT, lambda *_: threading.Thread(target=server.shutdown).start())
    if args.exit_on_stdin_close:
        def watch_stdin() -> None:
            sys.stdin.read()
            server.shutdown()

        threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"READY {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
