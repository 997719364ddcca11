"""The boto3 peer of `make bench`'s cold start: a Python function making the
same AWS calls as a nightshift function's first invocation.

It is written as a Python Lambda function is: boto3 imported and its clients
made at module level (in init, at full speed), a handler that makes the
calls, and the Runtime API loop of Lambda's Python runtime (next, handle,
respond). Its calls are the ones the Rust function sent for the same event,
recorded on the wire and translated beforehand into boto3's parameters:

    python3 boto3_peer.py --translate <recorded.json> <calls.json>

Then, as the function process (the bench spawns it with PEER_CALLS set):

    python3 boto3_peer.py

The peer decides nothing: it only sends what the Rust function sent, so the
comparison favours it.
"""

import json
import os
import sys
import urllib.parse
import xml.etree.ElementTree as ElementTree


def _s3_call(method, path, query, body):
    """boto3's parameters for the S3 requests nightshift's functions send."""
    bucket, _, key = path.lstrip("/").partition("/")
    q = urllib.parse.parse_qs(query, keep_blank_values=True)
    first = lambda name: q[name][0] if name in q else None  # noqa: E731
    if method == "GET" and "versions" in q:
        params = {"Bucket": bucket}
        for wire, name in [("prefix", "Prefix"), ("key-marker", "KeyMarker"),
                           ("version-id-marker", "VersionIdMarker"), ("max-keys", "MaxKeys")]:
            if first(wire) is not None:
                params[name] = int(first(wire)) if name == "MaxKeys" else first(wire)
        return "ListObjectVersions", params
    if method == "GET" and "lifecycle" in q:
        return "GetBucketLifecycleConfiguration", {"Bucket": bucket}
    if method == "PUT" and "lifecycle" in q:
        root = ElementTree.fromstring(body)
        strip = lambda tag: tag.rsplit("}", 1)[-1]  # noqa: E731

        def convert(element):
            children = list(element)
            if not children:
                text = element.text or ""
                if text in ("true", "false"):
                    return text == "true"
                return int(text) if text.isdigit() else text
            return {strip(c.tag): convert(c) for c in children}

        rules = [convert(rule) for rule in root if strip(rule.tag) == "Rule"]
        return "PutBucketLifecycleConfiguration", {"Bucket": bucket, "LifecycleConfiguration": {"Rules": rules}}
    if method == "POST" and "delete" in q:
        root = ElementTree.fromstring(body)
        objects = []
        quiet = False
        for element in root:
            tag = element.tag.rsplit("}", 1)[-1]
            if tag == "Quiet":
                quiet = (element.text or "").strip() == "true"
            elif tag == "Object":
                entry = {}
                for field in element:
                    entry[field.tag.rsplit("}", 1)[-1]] = field.text
                objects.append(entry)
        return "DeleteObjects", {"Bucket": bucket, "Delete": {"Objects": objects, "Quiet": quiet}}
    if method == "GET" and key:
        return "GetObject", {"Bucket": bucket, "Key": urllib.parse.unquote(key)}
    raise SystemExit(f"boto3_peer: no translation for the S3 request {method} {path}?{query}")


def translate(recorded):
    """[{service, operation, params}] from the recorded requests (method, url, target, scope, body)."""
    calls = []
    for request in recorded:
        service = request["service"]
        if request.get("target"):
            operation = request["target"].rsplit(".", 1)[-1]
            params = json.loads(request["body"] or "{}")
        elif service == "s3":
            path, _, query = request["url"].partition("?")
            operation, params = _s3_call(request["method"], path, query, request["body"])
        else:
            raise SystemExit(f"boto3_peer: no translation for {service} {request['method']} {request['url']}")
        calls.append({"service": service, "operation": operation, "params": params})
    return calls


if len(sys.argv) > 1 and sys.argv[1] == "--translate":
    with open(sys.argv[2]) as f:
        translated = translate(json.load(f))
    with open(sys.argv[3], "w") as f:
        json.dump(translated, f)
    sys.exit(0)

# ---- The function: init, as a Python Lambda function does it. ----
import http.client  # noqa: E402

import boto3  # noqa: E402
from botocore import xform_name  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

with open(os.environ["PEER_CALLS"]) as _f:
    CALLS = json.load(_f)
_config = Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3})
CLIENTS = {service: boto3.client(service, config=_config) for service in sorted({c["service"] for c in CALLS})}


def handler(event, context):
    errors = []
    for call in CALLS:
        try:
            getattr(CLIENTS[call["service"]], xform_name(call["operation"]))(**call["params"])
        except ClientError as err:
            errors.append(f"{call['operation']}: {err.response['Error'].get('Code')}")
    return {"calls": len(CALLS), "errors": errors}


def main():
    runtime = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    while True:
        runtime.request("GET", "/2018-06-01/runtime/invocation/next")
        answer = runtime.getresponse()
        event = json.loads(answer.read())
        request_id = answer.getheader("Lambda-Runtime-Aws-Request-Id")
        result = json.dumps(handler(event, None)).encode()
        runtime.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body=result,
                        headers={"Content-Type": "application/json"})
        runtime.getresponse().read()


main()
