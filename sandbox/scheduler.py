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
- `POST /_sandbox/scheduler/failed {"group": "g", "name": "n", "error": "…"}`
  says the invocation of a schedule that fired failed (the caller invokes,
  so the caller tells): as Scheduler does, it is tried again, due at the next
  pass, until its target's `RetryPolicy.MaximumRetryAttempts` (185 when
  none) are spent, then its input goes to the target's `DeadLetterConfig`
  queue (SQS, the input as the body, with `ERROR_MESSAGE` and
  `RETRY_ATTEMPTS` attributes) and the schedule is gone; without a
  dead-letter queue it is dropped. Answers `{"retried": bool, "dead_lettered": bool}`.
- `POST /_sandbox/scheduler/dead-letters {"name": "q"}` makes an SQS queue
  and answers its ARN; `GET /_sandbox/scheduler/dead-letters?arn=…` answers
  the messages it holds (body and attributes), for the tests to read.
- `GET /_sandbox/scheduler/schedules` answers every schedule, fired or not.
"""

import json
import re
from datetime import datetime, timedelta, timezone

import strict

PASS_PATH = "/_sandbox/time/pass"
FAILED_PATH = "/_sandbox/scheduler/failed"
# A dead-letter queue for the tests (POST {"name": …} creates it and answers its ARN), and what it holds (GET ?arn=…).
DEAD_LETTERS_PATH = "/_sandbox/scheduler/dead-letters"
# Scheduler's default retry policy: 185 attempts within 24 hours.
DEFAULT_RETRIES = 185
# Schedules that fired and were deleted (ActionAfterCompletion DELETE), kept until their invocation is
# known to have failed for good: (account, region, group, name) -> [schedule, retries so far].
_fired: dict = {}
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
            key = (account, region, group.name, name)
            _fired[key] = [schedule, _fired.get(key, [None, 0])[1]]
            if schedule.action_after_completion == "DELETE":
                del group.schedules[name]
    return sorted(fired, key=lambda s: s["expression"])


def failed(account: str, region: str, group_name: str, name: str, error: str) -> dict:
    """The invocation of a fired schedule failed: try it again, or dead-letter it."""
    key = (account, region, group_name, name)
    if key not in _fired:
        raise KeyError(f"no schedule {group_name}/{name} fired")
    schedule, retries = _fired[key]
    target = schedule.target or {}
    limit = (target.get("RetryPolicy") or {}).get("MaximumRetryAttempts", DEFAULT_RETRIES)
    if retries < limit:
        _fired[key][1] = retries + 1
        # Due again at once: the next pass of time runs it.
        schedule.schedule_expression = (datetime.now(timezone.utc) - timedelta(seconds=1)).strftime(
            "at(%Y-%m-%dT%H:%M:%S)")
        _backends(account)[region].schedule_groups[group_name].schedules[name] = schedule
        return {"retried": True, "dead_lettered": False}
    del _fired[key]
    queue_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
    if not queue_arn:
        return {"retried": False, "dead_lettered": False}
    from moto.sqs.models import sqs_backends

    _, _, _, queue_region, queue_account, queue_name = queue_arn.split(":")
    attributes = {
        "ERROR_MESSAGE": {"DataType": "String", "StringValue": error[:1000] or "the invocation failed"},
        "RETRY_ATTEMPTS": {"DataType": "Number", "StringValue": str(retries)},
        "SCHEDULE_ARN": {"DataType": "String",
                         "StringValue": f"arn:aws:scheduler:{region}:{account}:schedule/{group_name}/{name}"},
    }
    sqs_backends[queue_account][queue_region].send_message(queue_name, target.get("Input") or "",
                                                           message_attributes=attributes)
    return {"retried": False, "dead_lettered": True}


def _queues(account: str, region: str):
    from moto.sqs.models import sqs_backends

    return sqs_backends[account][region]


def dead_letter_queue(account: str, region: str, name: str) -> dict:
    """Makes an SQS queue to dead-letter into; answers its ARN."""
    queue = _queues(account, region).create_queue(name)
    return {"arn": queue.queue_arn}


def dead_letters(arn: str) -> list:
    """The messages a queue holds, oldest first: body and attributes."""
    _, _, _, region, account, name = arn.split(":")
    queue = _queues(account, region).get_queue(name)
    return [{"body": m.body, "attributes": {k: v.get("string_value") or v.get("StringValue")
                                            for k, v in (m.message_attributes or {}).items()}}
            for m in queue.messages]

