"""EventBridge's default buses, as far as nightshift's accounts use them.

moto keeps events but delivers none across accounts. Here each account's
default bus keeps what was put on it (PutEvents, and the "ECR Image Action"
event ECR puts on every successful push), and the rules that forward events to
another account's default bus (the stacks' ForwardOutcomesRule,
registry.yaml's ForwardPushesRule; see accounts.py) deliver them there, as
EventBridge does: only when the receiving bus's policy (its EventBusPolicy
statements) lets the sender's account put events, and with the envelope's
`account` still the sender's. A delivery the receiving bus refuses is kept as
refused. The tests read a bus, and invoke the function its rule would:

    GET /_sandbox/events?account=123456789012&region=us-east-1
        {"events": [<envelope>, ...], "refused": [{"to": ..., "event": <envelope>}, ...]}
"""

import datetime
import threading
import uuid

EVENTS_PATH = "/_sandbox/events"

_lock = threading.Lock()
# (account, region) -> envelopes put on or delivered to its default bus
_buses: dict[tuple, list] = {}
_refused: dict[tuple, list] = {}
# (account, region) -> [(rule name, pattern, [target accounts])]
_rules: dict[tuple, list] = {}
# (account, region) -> {statement id: (principal accounts, source or None)}
_policies: dict[tuple, dict] = {}


def reset_account(account: str, region: str) -> None:
    with _lock:
        _rules.pop((account, region), None)
        _policies.pop((account, region), None)


def add_rule(account: str, region: str, name: str, pattern: dict, targets: list[str]) -> None:
    with _lock:
        rules = _rules.setdefault((account, region), [])
        rules[:] = [r for r in rules if r[0] != name] + [(name, pattern, list(targets))]


def add_bus_policy(account: str, region: str, statement_id: str, principals: list[str], source=None) -> None:
    with _lock:
        _policies.setdefault((account, region), {})[statement_id] = (list(principals), source)


def _matches(pattern, event) -> bool:
    """An EventBridge pattern of exact values (lists of allowed values, nested for `detail`)."""
    for key, wanted in pattern.items():
        value = event.get(key) if isinstance(event, dict) else None
        if isinstance(wanted, dict):
            if not isinstance(value, dict) or not _matches(wanted, value):
                return False
            continue
        values = value if isinstance(value, list) else [value]
        if not any(v in wanted for v in values):
            return False
    return True


def _allowed(account: str, region: str, sender: str, source: str) -> bool:
    if sender == account:
        return True
    with _lock:
        statements = list(_policies.get((account, region), {}).values())
    return any(sender in principals and (wanted is None or wanted == source) for principals, wanted in statements)


def emit(account: str, region: str, source: str, detail_type: str, detail: dict, resources=None) -> dict:
    """Puts an event on the account's default bus and forwards it by its rules; the envelope."""
    envelope = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": list(resources or []),
        "detail": detail,
    }
    with _lock:
        _buses.setdefault((account, region), []).append(envelope)
        rules = list(_rules.get((account, region), []))
    for _, pattern, targets in rules:
        if not _matches(pattern, envelope):
            continue
        for target in targets:
            if _allowed(target, region, account, source):
                with _lock:
                    _buses.setdefault((target, region), []).append(envelope)
            else:
                with _lock:
                    _refused.setdefault((account, region), []).append({"to": target, "event": envelope})
    return envelope


def put_events(account: str, region: str, body: dict):
    """PutEvents on the default bus: (status, answer)."""
    import json

    answers, failed = [], 0
    for entry in body.get("Entries", []):
        bus = entry.get("EventBusName") or "default"
        if bus not in ("default", f"arn:aws:events:{region}:{account}:event-bus/default"):
            answers.append({"ErrorCode": "NotAuthorized", "ErrorMessage": f"the sandbox has no event bus {bus}"})
            failed += 1
            continue
        try:
            detail = json.loads(entry.get("Detail") or "{}")
        except ValueError:
            answers.append({"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."})
            failed += 1
            continue
        envelope = emit(account, region, entry.get("Source", ""), entry.get("DetailType", ""), detail,
                        entry.get("Resources"))
        answers.append({"EventId": envelope["id"]})
    return 200, {"FailedEntryCount": failed, "Entries": answers}


def bus(account: str, region: str) -> dict:
    with _lock:
        return {"events": list(_buses.get((account, region), [])),
                "refused": list(_refused.get((account, region), []))}
