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
import json
import re
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import s3_backends
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

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

BACKDATE_PATH = "/_sandbox/backdate"
NETWORK_PATH = "/_sandbox/default-network"
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


def default_network(region: str) -> dict:
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[ACCOUNT][region]
    subnet = next(s for s in ec2.describe_subnets() if s.default_for_az)
    group = next(g for g in ec2.describe_security_groups() if g.name == "default" and g.vpc_id == subnet.vpc_id)
    return {"subnet": subnet.id, "security_group": group.id}


SIGNED_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")


def signed_service(authorization: str) -> str:
    """The service a SigV4-signed request is for ("s3", "ecs"); "" when unsigned."""
    found = SIGNED_SERVICE.search(authorization)
    return found.group(1) if found else ""


class SandboxApp:
    def __init__(self) -> None:
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.locks: dict[str, threading.Lock] = {}
        self.locks_lock = threading.Lock()

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
        with self.lock_for(signed_service(environ.get("HTTP_AUTHORIZATION", ""))):
            return self.moto(environ, start_response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--exit-on-stdin-close", action="store_true")
    args = parser.parse_args()

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
