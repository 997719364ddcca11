"""ECR across accounts, as ECR allows it: only where the repository's policy does.

moto reads `registryId` only to refuse a repository of another account; ECR
serves another account's repository to a caller whose account its repository
policy allows for the action (`ecr:DescribeImages`, `ecr:BatchGetImage`,
`ecr:GetDownloadUrlForLayer`, `ecr:BatchCheckLayerAvailability`). So a request
naming another account's registry is checked against that repository's policy
here, and when allowed, moto acts in the registry's account (its
`x-moto-account-id` header); when not, the answer is ECR's AccessDeniedException.

moto has no layers (GetDownloadUrlForLayer is not implemented), and nightshift
reads an image's config blob for its OCI labels, so the sandbox keeps blobs:

    POST /_sandbox/ecr/blob  {"account", "region", "repository", "content"}

stores `content` (a string) as a blob of that repository and answers its digest
(the SHA-256 of the content, as a registry names blobs); GetDownloadUrlForLayer
answers a URL on this server for a blob the repository has (else
LayersNotFoundException), and GET on it answers the blob, as S3's presigned URL would.
"""

import fnmatch
import hashlib
import json
import threading

from accounts import as_list, statements

BLOB_PATH = "/_sandbox/ecr/blob"
READ_ACTIONS = ("DescribeImages", "BatchGetImage", "GetDownloadUrlForLayer", "BatchCheckLayerAvailability")

_blobs: dict[tuple, bytes] = {}
_lock = threading.Lock()


def put_blob(account: str, region: str, repository: str, content: str) -> str:
    data = content.encode("utf-8")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with _lock:
        _blobs[(account, region, repository, digest)] = data
    return digest


def blob(key: str):
    """The blob a download URL names (`<account>/<region>/<digest>/<repository>`), or None."""
    account, region, digest, repository = key.split("/", 3)
    with _lock:
        return _blobs.get((account, region, repository, digest))


def _principals(statement) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    if isinstance(principal, dict):
        found = principal.get("AWS", [])
        return [found] if isinstance(found, str) else list(found)
    return []


def allows(policy_text: str, caller_account: str, action: str) -> bool:
    """Whether a repository policy lets `caller_account` do `ecr:<action>` (an explicit Deny wins)."""
    try:
        policy = json.loads(policy_text or "{}")
    except ValueError:
        return False
    matched = {"Allow": False, "Deny": False}
    for statement in statements(policy):
        actions = as_list(statement.get("Action"))
        if not any(fnmatch.fnmatchcase(f"ecr:{action}".lower(), a.lower()) for a in actions):
            continue
        who = _principals(statement)
        if not any(p in ("*", caller_account, f"arn:aws:iam::{caller_account}:root") for p in who):
            continue
        matched[statement.get("Effect", "")] = True
    return matched["Allow"] and not matched["Deny"]


def check(caller_account: str, region: str, operation: str, body: dict):
    """For a request naming another account's registry: (moto's account to act in, None) when
    allowed, else (None, (status, type, message)); (None, None) for a request of the caller's own."""
    from moto.ecr.models import ecr_backends

    registry = body.get("registryId") or caller_account
    if registry == caller_account or operation not in READ_ACTIONS + ("GetRepositoryPolicy", "DescribeRepositories"):
        return None, None
    repository_name = body.get("repositoryName", "")
    arn = f"arn:aws:ecr:{region}:{registry}:repository/{repository_name}"
    repository = ecr_backends[registry][region].repositories.get(repository_name)
    if repository is None or operation not in READ_ACTIONS or not allows(repository.policy or "", caller_account, operation):
        return None, (400, "AccessDeniedException",
                      f"User: arn:aws:sts::{caller_account}:assumed-role/caller is not authorized to perform: "
                      f"ecr:{operation} on resource: {arn} because no resource-based policy allows the "
                      f"ecr:{operation} action")
    return registry, None


def download_url(base: str, account: str, region: str, body: dict):
    """GetDownloadUrlForLayer's answer: (status, JSON)."""
    repository = body.get("repositoryName", "")
    digest = body.get("layerDigest", "")
    from moto.ecr.models import ecr_backends

    if repository not in ecr_backends[account][region].repositories:
        return 400, {"__type": "RepositoryNotFoundException",
                     "message": f"The repository with name '{repository}' does not exist in the registry with id '{account}'"}
    with _lock:
        found = (account, region, repository, digest) in _blobs
    if not found:
        return 400, {"__type": "LayersNotFoundException",
                     "message": f"The layer with digest '{digest}' does not exist in the repository '{repository}'"}
    return 200, {"downloadUrl": f"{base}{BLOB_PATH}/{account}/{region}/{digest}/{repository}", "layerDigest": digest}
