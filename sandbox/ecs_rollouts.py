"""ECS service deployments as ECS keeps them, where moto keeps one forever.

moto gives a service one deployment at creation and never another: an update
that changes the task definition, or forces a new deployment, leaves the same
PRIMARY deployment in place (at most with a new id). ECS instead:

- starts a new PRIMARY deployment (a new `ecs-svc/…` id, the new revision,
  `rolloutState` IN_PROGRESS) on every UpdateService that changes the task
  definition or sets forceNewDeployment, and keeps the one before as ACTIVE
  until the new one ends;
- ends the rollout COMPLETED (the ACTIVE ones are drained and go) or FAILED;
  a service at desired count 0 completes it at once, no task ever started
  (`runningCount` 0), as ECS does;
  a FAILED rollout whose service has the circuit breaker with rollback on
  starts a rollback: a new PRIMARY deployment of the last COMPLETED revision,
  IN_PROGRESS, with the reason "ECS deployment circuit breaker: rolling back to
  deploymentId ecs-svc/…", which itself ends COMPLETED or FAILED.

    POST /_sandbox/ecs/rollout {"cluster": "shop", "service": "api", "outcome": "COMPLETED"}

ends the service's IN_PROGRESS rollout so (outcome COMPLETED or FAILED) and
answers the deployments as they now are. `age` moves every deployment's
times into the past, for time passing (see scheduler.py's `/_sandbox/time/pass`).

ECS also keeps a service's history, which outlives the deployments it lists
(moto has none of it): each rollout is a service deployment
(`service-deployment/<cluster>/<service>/<id>`) from the service revisions it
replaces to a new one (`service-revision/<cluster>/<service>/<id>`, the task
definition and its images). It is IN_PROGRESS, then SUCCESSFUL, or, failed by
the circuit breaker, ROLLBACK_IN_PROGRESS and ROLLBACK_SUCCESSFUL or
ROLLBACK_FAILED (`rollback` names the revision rolled back to; ECS makes no new
service deployment or revision for a rollback), or STOPPED without rollback or
when a newer rollout replaces it. ListServiceDeployments (newest first,
filtered by status and createdAt), DescribeServiceDeployments and
DescribeServiceRevisions answer it (`answer`).
"""

import datetime

import copy
import random

import ecs_tasks
import hooks

from moto.core.utils import utcnow

ROLLOUT_PATH = "/_sandbox/ecs/rollout"


def _now():
    # moto's own (naive UTC) times, so its answers serialize every deployment alike.
    return utcnow()


def _deployment_id() -> str:
    return f"ecs-svc/{random.randint(10**18, 10**19 - 1)}"


def _deployment(service, task_definition: str, reason: str | None = None) -> dict:
    deployment_id = _deployment_id()
    now = _now()
    return {
        "createdAt": now,
        "desiredCount": service.desired_count,
        "failedTasks": 0,
        "id": deployment_id,
        "launchType": service.launch_type,
        "pendingCount": service.desired_count,
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": reason or f"ECS deployment {deployment_id} in progress.",
        "runningCount": 0,
        "platformVersion": service.platform_version,
        "platformFamily": "EC2" if service.launch_type == "EC2" else "FARGATE",
        "status": "PRIMARY",
        "taskDefinition": task_definition,
        "updatedAt": now,
    }


# (account, region, service ARN) -> its service deployments, newest first; revision ARN -> revision.
_history: dict[tuple, list] = {}
_revisions: dict[str, dict] = {}
HISTORY_OPERATIONS = ("ListServiceDeployments", "DescribeServiceDeployments", "DescribeServiceRevisions")


def _place(service) -> tuple[str, str, str, str]:
    """(account, region, cluster name, service name) of a moto service."""
    parts = service.arn.split(":")
    cluster, name = parts[5].split("/")[1:3]
    return parts[4], parts[3], cluster, name


def _record_rollout(service, started: dict, source: str | None) -> None:
    """A new service deployment to a new service revision (for a rollout, not a rollback)."""
    from moto.ecs.models import ecs_backends

    account, region, cluster, name = _place(service)
    backend = ecs_backends[account][region]
    prefix = f"arn:aws:ecs:{region}:{account}"
    revision_arn = f"{prefix}:service-revision/{cluster}/{name}/{started['id'].rsplit('/', 1)[-1]}"
    td = backend.describe_task_definition(started["taskDefinition"])
    images = []
    for container in td.container_definitions:
        image = container.get("image", "")
        images.append({"containerName": container.get("name"), "image": image,
                       "imageDigest": image.split("@", 1)[1] if "@" in image else None})
    _revisions[revision_arn] = {
        "serviceRevisionArn": revision_arn, "serviceArn": service.arn, "clusterArn": service.cluster_arn,
        "taskDefinition": started["taskDefinition"], "containerImages": images, "createdAt": started["createdAt"],
    }
    history = _history.setdefault((account, region, service.arn), [])
    for older in history:
        if older["status"] in ("IN_PROGRESS", "PENDING"):
            older["status"], older["finishedAt"] = "STOPPED", started["createdAt"]
            older["statusReason"] = "a newer service deployment replaced it"
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    deployment_id = "".join(random.choice(letters) for _ in range(21))
    history.insert(0, {
        "serviceDeploymentArn": f"{prefix}:service-deployment/{cluster}/{name}/{deployment_id}",
        "serviceArn": service.arn, "clusterArn": service.cluster_arn,
        "createdAt": started["createdAt"], "startedAt": started["createdAt"], "updatedAt": started["createdAt"],
        "sourceServiceRevisions": [{"arn": source}] if source else [],
        "targetServiceRevision": {"arn": revision_arn},
        "status": "IN_PROGRESS",
        "ecsDeploymentId": started["id"],
    })


def _history_of(service) -> list:
    account, region, _, _ = _place(service)
    return _history.get((account, region, service.arn), [])


def _revision_of(service, deployment: dict) -> str | None:
    """The service revision a listed deployment runs."""
    for past in _history_of(service):
        if past.get("ecsDeploymentId") == deployment["id"]:
            return past["targetServiceRevision"]["arn"]
    return None


def _start(service, task_definition: str, reason: str | None = None) -> dict:
    for deployment in service.deployments:
        if deployment["status"] == "PRIMARY":
            deployment["status"] = "ACTIVE"
            deployment["updatedAt"] = _now()
    started = _deployment(service, task_definition, reason)
    service.deployments.insert(0, started)
    service.task_definition = task_definition
    return started


def _patch() -> None:
    from moto.ecs import models

    original = models.EC2ContainerServiceBackend.update_service

    def update_service(self, properties):
        cluster = properties.get("cluster", "default")
        name = properties["service"].split("/")[-1]
        before = self._get_service(cluster, name)
        previous = before.task_definition
        kept = copy.deepcopy(before.deployments)
        forced = bool(properties.get("force_new_deployment"))
        service = original(self, properties)
        if service.deployment_controller.get("type") != "ECS":
            return service
        primary = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
        if forced or service.task_definition != previous or primary is None:
            # moto renamed the PRIMARY in place for a forced deployment; ECS keeps it, as ACTIVE.
            service.deployments = kept
            running = next((d for d in kept if d["status"] == "PRIMARY"), None)
            source = _revision_of(service, running) if running else None
            started = _start(service, service.task_definition)
            _record_rollout(service, started, source)
            account, region, _, _ = _place(service)
            # ECS's BLUE_GREEN, CANARY and LINEAR strategies run the service's lifecycle hooks (hooks.py).
            hooks.ecs_rollout_started(account, region, service, started, source, _revision_of(service, started))
        elif primary is not None:
            primary["desiredCount"] = service.desired_count
            primary["updatedAt"] = _now()
            if primary.get("rolloutState") == "COMPLETED":
                ecs_tasks.settle(self, service, primary["taskDefinition"], primary["id"])
        rolling = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
        if service.desired_count == 0 and rolling is not None and rolling["rolloutState"] == "IN_PROGRESS":
            # No task to start: ECS reaches steady state, and completes the rollout, at once.
            account, region, cluster, name = _place(service)
            end_rollout(account, region, cluster, name, "COMPLETED")
        return service

    models.EC2ContainerServiceBackend.update_service = update_service

    original_create = models.EC2ContainerServiceBackend.create_service

    def create_service(self, *args, **kwargs):
        # Creating a service is its first service deployment, to its first revision.
        service = original_create(self, *args, **kwargs)
        primary = next((d for d in service.deployments if d.get("status") == "PRIMARY"), None)
        if service.deployment_controller.get("type") == "ECS" and primary is not None:
            _record_rollout(service, primary, None)
            if primary.get("rolloutState") == "COMPLETED":
                first = _history_of(service)[0]
                first["status"], first["finishedAt"] = "SUCCESSFUL", primary["createdAt"]
                ecs_tasks.settle(self, service, primary["taskDefinition"], primary["id"])
        return service

    models.EC2ContainerServiceBackend.create_service = create_service


def end_by_hook(key: tuple, outcome: str) -> list:
    """A lifecycle hook's last word on a rollout (hooks.py): COMPLETED, or FAILED and rolled back at once,
    as ECS does for its BLUE_GREEN, CANARY and LINEAR strategies (the old revision still has the traffic).
    The deployments as the rollout ended (before the rollback's own completion)."""
    from moto.ecs.models import ecs_backends

    account, region, cluster, name, deployment = key
    service = ecs_backends[account][region]._get_service(cluster, name)
    primary = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
    if primary is None or primary["id"] != deployment or primary["rolloutState"] != "IN_PROGRESS":
        return []  # A newer rollout replaced it.
    if outcome == "COMPLETED":
        return copy.deepcopy(end_rollout(account, region, cluster, name, "COMPLETED"))
    failed = copy.deepcopy(end_rollout(account, region, cluster, name, "FAILED", rollback=True,
                                       reason="ECS deployment lifecycle hook failed."))
    end_rollout(account, region, cluster, name, "COMPLETED")
    return failed


def end_rollout(account: str, region: str, cluster: str, name: str, outcome: str, rollback: bool | None = None,
                reason: str = "ECS deployment circuit breaker: tasks failed to start.") -> list:
    """Ends the service's IN_PROGRESS rollout; returns its deployments. A FAILED one rolls back when
    `rollback` says so, else when the service's circuit breaker does."""
    from moto.ecs.models import ecs_backends

    if outcome not in ("COMPLETED", "FAILED"):
        raise ValueError(f"outcome must be COMPLETED or FAILED, not {outcome!r}")
    service = ecs_backends[account][region]._get_service(cluster, name)
    rolling = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
    if rolling is None or rolling["rolloutState"] != "IN_PROGRESS":
        raise ValueError(f"{cluster}/{name} has no rollout in progress")
    rolling["rolloutState"] = outcome
    rolling["updatedAt"] = _now()
    # The service deployment: the rollout's own, or, for a rollback, the one it rolls back.
    past = next((p for p in _history_of(service) if p["status"] in ("IN_PROGRESS", "ROLLBACK_IN_PROGRESS")), None)
    if past is not None:
        past["updatedAt"] = rolling["updatedAt"]
        if past["status"] == "ROLLBACK_IN_PROGRESS":
            past["status"] = "ROLLBACK_SUCCESSFUL" if outcome == "COMPLETED" else "ROLLBACK_FAILED"
            past["finishedAt"] = rolling["updatedAt"]
        elif outcome == "COMPLETED":
            past["status"], past["finishedAt"] = "SUCCESSFUL", rolling["updatedAt"]
        else:
            past["status"], past["finishedAt"] = "STOPPED", rolling["updatedAt"]
            past["statusReason"] = reason
    if outcome == "COMPLETED":
        rolling["rolloutStateReason"] = f"ECS deployment {rolling['id']} completed."
        rolling["runningCount"], rolling["pendingCount"] = service.desired_count, 0
        service.deployments = [rolling]
        ecs_tasks.settle(ecs_backends[account][region], service, rolling["taskDefinition"], rolling["id"])
        return service.deployments
    rolling["rolloutStateReason"] = reason
    rolling["failedTasks"] = max(1, service.desired_count)
    breaker = (getattr(service, "deployment_configuration", None) or {}).get("deploymentCircuitBreaker") or {}
    if rollback is None:
        rollback = bool(breaker.get("enable") and breaker.get("rollback"))
    who = reason.split(":")[0].rstrip(".")
    last_good = next((d for d in service.deployments if d is not rolling), None)
    if rollback and last_good is not None:
        started = _start(service, last_good["taskDefinition"],
                         f"{who}: rolling back to deploymentId {last_good['id']}.")
        if past is not None:
            past["status"], past["finishedAt"] = "ROLLBACK_IN_PROGRESS", None
            past["statusReason"] = reason
            past["rollback"] = {"reason": started["rolloutStateReason"], "startedAt": started["createdAt"],
                                "serviceRevisionArn": _revision_of(service, last_good)}
    return service.deployments


def age(account: str, minutes: float) -> None:
    """Moves every service deployment's createdAt and updatedAt `minutes` into the past."""
    from moto.ecs.models import ecs_backends

    for backend in ecs_backends[account].values():
        ecs_tasks.age(backend, minutes)
        for service in backend.services.values():
            for deployment in service.deployments:
                for field in ("createdAt", "updatedAt"):
                    if isinstance(deployment.get(field), datetime.datetime):
                        deployment[field] -= datetime.timedelta(minutes=minutes)
    for (owner, _, _), history in _history.items():
        if owner != account:
            continue
        for past in history:
            for field in ("createdAt", "startedAt", "updatedAt", "finishedAt"):
                if isinstance(past.get(field), datetime.datetime):
                    past[field] -= datetime.timedelta(minutes=minutes)


def _epoch(value):
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=datetime.timezone.utc).timestamp()
    return value


def json_default(value):
    """Times in the answers' JSON: epoch seconds, as ECS sends them."""
    if isinstance(value, datetime.datetime):
        return _epoch(value)
    raise TypeError(f"{type(value)} is not JSON")


def _shown(item: dict, keys) -> dict:
    return {k: _epoch(v) for k, v in item.items() if k in keys and v is not None}


BRIEF = ("serviceDeploymentArn", "serviceArn", "clusterArn", "startedAt", "createdAt", "finishedAt",
         "status", "statusReason")
WHOLE = BRIEF + ("updatedAt", "sourceServiceRevisions", "targetServiceRevision", "rollback")


def answer(account: str, region: str, operation: str, body: dict) -> tuple[int, dict]:
    """ECS's answer to a service-history operation: (HTTP status, JSON)."""
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[account][region]
    if operation == "ListServiceDeployments":
        try:
            service = backend._get_service(body.get("cluster", "default"), body["service"].split("/")[-1])
        except Exception:
            return 400, {"__type": "ServiceNotFoundException", "message": "Service not found."}
        wanted = set(body.get("status") or [])
        created = body.get("createdAt") or {}
        found = []
        for past in _history_of(service):
            at = _epoch(past["createdAt"])
            if wanted and past["status"] not in wanted:
                continue
            if "before" in created and at > created["before"]:
                continue
            if "after" in created and at < created["after"]:
                continue
            brief = _shown(past, BRIEF)
            brief["targetServiceRevisionArn"] = past["targetServiceRevision"]["arn"]
            found.append(brief)
        start = int(body.get("nextToken") or 0)
        size = int(body.get("maxResults") or 20)
        page = {"serviceDeployments": found[start:start + size]}
        if start + size < len(found):
            page["nextToken"] = str(start + size)
        return 200, page
    if operation == "DescribeServiceDeployments":
        everything = {p["serviceDeploymentArn"]: p for history in _history.values() for p in history}
        arns = body.get("serviceDeploymentArns", [])
        return 200, {
            "serviceDeployments": [_shown(everything[a], WHOLE) for a in arns if a in everything],
            "failures": [{"arn": a, "reason": "MISSING"} for a in arns if a not in everything],
        }
    arns = body.get("serviceRevisionArns", [])
    return 200, {
        "serviceRevisions": [{k: _epoch(v) for k, v in _revisions[a].items()} for a in arns if a in _revisions],
        "failures": [{"arn": a, "reason": "MISSING"} for a in arns if a not in _revisions],
    }


_patch()
