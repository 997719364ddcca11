"""A service's tasks, as ECS runs them, where moto starts none.

moto never starts a service's tasks (only RunTask does), and its ListTasks
ignores `serviceName`. ECS keeps `desiredCount` tasks of the service's
revision RUNNING: each in the group `service:<name>`, started by its
deployment, its containers reporting the image digest they run
(`imageDigest`) and its `startedAt`. Patched here so:

- when a rollout completes (ecs_rollouts.end_rollout), the service runs
  `desiredCount` tasks of the revision it rolled out: tasks of that revision
  already running stay (with their start times), the rest start now, and the
  tasks of other revisions stop; a service at desired count 0 runs none;
- when UpdateService changes only the desired count, tasks of the running
  revision start or stop to match (scale-to-zero's sleep stops them all, a
  wake starts them then);
- ListTasks filters by `serviceName`, as ECS does;
- `age` moves every task's `startedAt` into the past, with the deployments.

A task started here stays RUNNING (moto otherwise moves a task on each time it
is described) until the sandbox stops it.
"""

import datetime

from moto.core.utils import utcnow

_RUNNING = [("RUNNING", "RUNNING")]
_STOPPED = [("STOPPED", "STOPPED")]


def _digest(image: str | None) -> str | None:
    if image and "@sha256:" in image:
        return image.split("@", 1)[1]
    return None


def _service_tasks(backend, service) -> list:
    group = f"service:{service.name}"
    cluster = service.cluster_name if hasattr(service, "cluster_name") else service.cluster_arn.split("/")[-1]
    return [t for t in backend.tasks.get(cluster, {}).values()
            if t.group == group and t.desired_status == "RUNNING"]


def _stop(task, reason: str) -> None:
    task.desired_status = "STOPPED"
    task._transitions = _STOPPED
    task.status = "STOPPED"
    task.stopped_reason = reason
    task.stopped_at = utcnow()
    for container in task.containers:
        container.last_status = "STOPPED"


def _start(backend, service, task_definition_arn: str, started_by: str):
    from moto.ecs.models import Container, Task

    cluster = backend._get_cluster(service.cluster_arn.split("/")[-1])
    definition = backend.describe_task_definition(task_definition_arn)
    # No network interface is attached (moto would make one in its EC2): none of nightshift's reads look at it.
    mode, definition.network_mode = definition.network_mode, None
    try:
        task = Task(cluster, definition, None, None, backend=backend, group=f"service:{service.name}",
                    launch_type=service.launch_type or "FARGATE", started_by=started_by)
    finally:
        definition.network_mode = mode
    task._transitions = _RUNNING
    task.status = "RUNNING"
    task.started_at = utcnow()
    task.created_at = task.started_at
    containers = []
    for spec in definition.container_definitions:
        container = Container(definition)
        container.name, container.image = spec.get("name"), spec.get("image")
        container.image_digest = _digest(spec.get("image"))
        container.last_status = "RUNNING"
        container.task_arn = task.task_arn
        containers.append(container)
    task.containers = containers
    backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
    return task


def settle(backend, service, task_definition_arn: str, started_by: str) -> None:
    """The service runs `desiredCount` tasks of `task_definition_arn`, and no others."""
    running = _service_tasks(backend, service)
    for task in running:
        if task.task_definition_arn != task_definition_arn:
            _stop(task, f"Task stopped by ECS: {started_by} replaced it")
    kept = sorted((t for t in running if t.task_definition_arn == task_definition_arn),
                  key=lambda t: t.started_at)
    for task in kept[service.desired_count:]:
        _stop(task, "Scaling activity initiated by (deployment " + started_by + ")")
    for _ in range(max(0, service.desired_count - len(kept))):
        _start(backend, service, task_definition_arn, started_by)


def age(backend, minutes: float) -> None:
    for tasks in backend.tasks.values():
        for task in tasks.values():
            for field in ("started_at", "created_at", "stopped_at"):
                if isinstance(getattr(task, field, None), datetime.datetime):
                    setattr(task, field, getattr(task, field) - datetime.timedelta(minutes=minutes))


def _patch() -> None:
    from moto.ecs import models

    original = models.EC2ContainerServiceBackend.list_tasks

    def list_tasks(self, cluster_str=None, container_instance=None, family=None, started_by=None,
                   service_name=None, desiredStatus=None):
        tasks = original(self, cluster_str, container_instance, family, started_by, None, desiredStatus)
        if service_name:
            name = service_name.split("/")[-1]
            tasks = [t for t in tasks if t.group == f"service:{name}"]
        return tasks

    models.EC2ContainerServiceBackend.list_tasks = list_tasks


_patch()
