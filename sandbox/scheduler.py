"""EventBridge Scheduler as strict as AWS, and time passing on demand.

moto keeps schedules but checks nothing of CreateSchedule (REST-JSON, so
strict.py's X-Amz-Target check does not see it) and never runs one. Here:

- CreateSchedule's body and name are checked against botocore's model
  (strict.Checker); an `at(...)` expression must be `at(yyyy-mm-ddThh:mm:ss)`
  and not in the past; a schedule that exists is a 409 ConflictException and a
  group that does not, a 404 ResourceNotFoundException, as AWS answers them.
- `POST /_sandbox/time/pass {"minutes": 31}` lets that much time pass for
  the services and the schedules (every ECS deployment's times, every
  one-time schedule's `at`, and every RFC 3339 UTC time a schedule's JSON
  input carries, such as the completion a promotion soaks from, move that far
  into the past), then runs every
  one-time schedule now due: answers each one's name, group, expression and
  target (Arn, RoleArn, Input) for the caller to invoke, and deletes those
  whose ActionAfterCompletion is DELETE, as Scheduler does.
- `GET /_sandbox/scheduler/schedules` answers every schedule, fired or not.
"""

import json
import re
from datetime import datetime, timedelta, timezone

import strict

PASS_PATH = "/_sandbox/time/pass"
SCHEDULES_PATH = "/_sandbox/scheduler/schedules"
SCHEDULE_PATH = re.compile(r"^/schedules/([^/]+)$")
AT = re.compile(r"^at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\)$")


def _backends(account: str):
    from moto.scheduler.models import scheduler_backends

    return scheduler_backends[account]


def _at(expression: str):
    """The UTC time of an `at(...)` expression; `None` for rate and cron; raises ValueError if malformed."""
    if not expression.startswith("at("):
        return None
    found = AT.match(expression)
    if not found:
        raise ValueError(f"Invalid Schedule Expression {expression}.")
    return datetime(*(int(g) for g in found.groups()), tzinfo=timezone.utc)


def refusal(account: str, region: str, method: str, path: str, raw: bytes):
    """`None` when Scheduler would take the request, else (status, error type, message)."""
    found = SCHEDULE_PATH.match(path)
    if method != "POST" or not found:
        return None
    name = found.group(1)
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return 400, "ValidationException", "the request body is not JSON"
    checker = strict.Checker("scheduler")
    checker.check("CreateScheduleInput", dict(body, Name=name), "")
    if checker.errors:
        n = len(checker.errors)
        return 400, "ValidationException", f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(
            checker.errors)
    expression = body.get("ScheduleExpression", "")
    try:
        at = _at(expression)
    except ValueError as err:
        return 400, "ValidationException", str(err)
    zone = body.get("ScheduleExpressionTimezone") or "UTC"
    if at is not None and zone == "UTC" and at < datetime.now(timezone.utc):
        return 400, "ValidationException", f"The schedule expression {expression} is in the past."
    group = body.get("GroupName") or "default"
    groups = _backends(account)[region].schedule_groups
    if group not in groups:
        return 404, "ResourceNotFoundException", f"Schedule group {group} does not exist."
    if name in groups[group].schedules:
        return 409, "ConflictException", f"Schedule {name} already exists."
    return None


def _described(schedule) -> dict:
    return {
        "name": schedule.name,
        "group": schedule.group_name,
        "expression": schedule.schedule_expression,
        "timezone": schedule.schedule_expression_timezone,
        "action_after_completion": schedule.action_after_completion,
        "flexible_time_window": schedule.flexible_time_window,
        "target": schedule.target,
    }


def schedules(account: str, region: str) -> list:
    found = []
    for group in _backends(account)[region].schedule_groups.values():
        found.extend(_described(s) for s in group.schedules.values())
    return found


RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def _moved_back(value, minutes: float):
    """The JSON value with every RFC 3339 UTC time in it `minutes` earlier."""
    if isinstance(value, dict):
        return {k: _moved_back(v, minutes) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved_back(v, minutes) for v in value]
    if isinstance(value, str) and RFC3339_UTC.match(value):
        at = datetime.fromisoformat(value.replace("Z", "+00:00")) - timedelta(minutes=minutes)
        return at.strftime("%Y-%m-%dT%H:%M:%S") + ("." + value.split(".")[1] if "." in value else "Z")
    return value


def shift(account: str, minutes: float) -> None:
    """Moves every one-time schedule's `at`, and the times its input carries, `minutes` into the past."""
    for backend in _backends(account).values():
        for group in backend.schedule_groups.values():
            for schedule in group.schedules.values():
                at = _at(schedule.schedule_expression or "")
                if at is not None:
                    moved = at - timedelta(minutes=minutes)
                    schedule.schedule_expression = moved.strftime("at(%Y-%m-%dT%H:%M:%S)")
                target = schedule.target or {}
                try:
                    carried = json.loads(target.get("Input") or "null")
                except ValueError:
                    continue
                if carried is not None:
                    target["Input"] = json.dumps(_moved_back(carried, minutes))


def fire(account: str, region: str) -> list:
    """Every one-time schedule due now, deleted when its action after completion is DELETE."""
    limit = datetime.now(timezone.utc)
    fired = []
    for group in _backends(account)[region].schedule_groups.values():
        for name, schedule in list(group.schedules.items()):
            at = _at(schedule.schedule_expression or "")
            if at is None or at > limit:
                continue
            fired.append(_described(schedule))
            if schedule.action_after_completion == "DELETE":
                del group.schedules[name]
    return sorted(fired, key=lambda s: s["expression"])
