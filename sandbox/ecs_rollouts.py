"""ECS service deployments as ECS keeps them, where moto keeps one forever.

moto gives a service one deployment at creation and never another: an update
that changes the task definition, or forces a new deployment, leaves the same
PRIMARY deployment in place (at most with a new id). ECS instead:

- starts a new PRIMARY deployment (a new `ecs-svc/…` id, the new revision,
  `rolloutState` IN_PROGRESS) on every UpdateService that changes the task
  definition or sets forceNewDeployment, and keeps the one before as ACTIVE
  until the new one ends;
- ends the rollout COMPLETED (the ACTIVE ones are drained and go) or FAILED;
  a FAILED rollout whose service has the circuit breaker with rollback on
  starts a rollback: a new PRIMARY deployment of the last COMPLETED revision,
  IN_PROGRESS, with the reason "ECS deployment circuit breaker: rolling back to
  deploymentId ecs-svc/…", which itself ends COMPLETED or FAILED.

    POST /_sandbox/ecs/rollout {"cluster": "shop", "service": "api", "outcome": "COMPLETED"}

ends the service's IN_PROGRESS rollout so (outcome COMPLETED or FAILED) and
answers the deployments as they now are. `age` moves every deployment's
times into the past, for time passing (see scheduler.py's `/_sandbox/time/pass`).
"""

import datetime

import copy
import random

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
            _start(service, service.task_definition)
        elif primary is not None:
            primary["desiredCount"] = service.desired_count
            primary["updatedAt"] = _now()
        return service

    models.EC2ContainerServiceBackend.update_service = update_service


def end_rollout(account: str, region: str, cluster: str, name: str, outcome: str) -> list:
    """Ends the service's IN_PROGRESS rollout; returns its deployments."""
    from moto.ecs.models import ecs_backends

    if outcome not in ("COMPLETED", "FAILED"):
        raise ValueError(f"outcome must be COMPLETED or FAILED, not {outcome!r}")
    service = ecs_backends[account][region]._get_service(cluster, name)
    rolling = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
    if rolling is None or rolling["rolloutState"] != "IN_PROGRESS":
        raise ValueError(f"{cluster}/{name} has no rollout in progress")
    rolling["rolloutState"] = outcome
    rolling["updatedAt"] = _now()
    if outcome == "COMPLETED":
        rolling["rolloutStateReason"] = f"ECS deployment {rolling['id']} completed."
        rolling["runningCount"], rolling["pendingCount"] = service.desired_count, 0
        service.deployments = [rolling]
        return service.deployments
    rolling["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
    rolling["failedTasks"] = max(1, service.desired_count)
    breaker = (getattr(service, "deployment_configuration", None) or {}).get("deploymentCircuitBreaker") or {}
    last_good = next((d for d in service.deployments if d is not rolling), None)
    if breaker.get("enable") and breaker.get("rollback") and last_good is not None:
        _start(service, last_good["taskDefinition"],
               f"ECS deployment circuit breaker: rolling back to deploymentId {last_good['id']}.")
    return service.deployments


def age(account: str, minutes: float) -> None:
    """Moves every service deployment's createdAt and updatedAt `minutes` into the past."""
    from moto.ecs.models import ecs_backends

    for backend in ecs_backends[account].values():
        for service in backend.services.values():
            for deployment in service.deployments:
                for field in ("createdAt", "updatedAt"):
                    if isinstance(deployment.get(field), datetime.datetime):
                        deployment[field] -= datetime.timedelta(minutes=minutes)


_patch()
