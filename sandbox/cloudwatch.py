"""CloudWatch alarms' history, as CloudWatch keeps it, where moto keeps none to read.

moto answers DescribeAlarms (JSON protocol too) but not DescribeAlarmHistory,
and the history it keeps records each update's *old* state. CloudWatch keeps,
for each change of an alarm's state, a `StateUpdate` item: its time, the
summary "Alarm updated from OK to ALARM", and `HistoryData`, a JSON string
with `oldState` and `newState` (`stateValue`, `stateReason`). Patched here so
every SetAlarmState (and moto's own state changes) is such an item, and
DescribeAlarmHistory (`answer`) lists them newest first, filtered by
AlarmName, HistoryItemType, StartDate and EndDate (epoch seconds, as the JSON
protocol sends them), MaxRecords pages with NextToken.
"""

import datetime
import json

from moto.core.utils import utcnow


def _patch() -> None:
    from moto.cloudwatch import models

    original = models.Alarm.update_state

    def update_state(self, reason, reason_data, state_value):
        old = self.state_value
        original(self, reason, reason_data, state_value)
        if old == state_value:
            return
        data = {"version": "1.0", "oldState": {"stateValue": old}, "newState": {"stateValue": state_value,
                                                                             "stateReason": reason}}
        self.__dict__.setdefault("state_history", []).append({
            "AlarmName": self.name, "AlarmType": "MetricAlarm", "Timestamp": utcnow(),
            "HistoryItemType": "StateUpdate", "HistorySummary": f"Alarm updated from {old} to {state_value}",
            "HistoryData": json.dumps(data)})

    models.Alarm.update_state = update_state


def _epoch(value) -> float:
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=datetime.timezone.utc).timestamp() if value.tzinfo is None else value.timestamp()
    return float(value)


def answer(account: str, region: str, body: dict) -> tuple[int, dict]:
    """DescribeAlarmHistory: (HTTP status, JSON)."""
    from moto.cloudwatch.models import cloudwatch_backends

    alarms = cloudwatch_backends[account][region].alarms
    name = body.get("AlarmName")
    kind = body.get("HistoryItemType")
    items = [item for alarm in alarms.values() if name in (None, alarm.name)
             for item in alarm.__dict__.get("state_history", [])
             if kind in (None, item["HistoryItemType"])]
    if "StartDate" in body:
        items = [i for i in items if _epoch(i["Timestamp"]) >= _epoch(body["StartDate"])]
    if "EndDate" in body:
        items = [i for i in items if _epoch(i["Timestamp"]) <= _epoch(body["EndDate"])]
    items.sort(key=lambda i: i["Timestamp"], reverse=body.get("ScanBy") != "TimestampAscending")
    start = int(body.get("NextToken") or 0)
    size = int(body.get("MaxRecords") or 100)
    page = [dict(i, Timestamp=_epoch(i["Timestamp"])) for i in items[start:start + size]]
    out = {"AlarmHistoryItems": page}
    if start + size < len(items):
        out["NextToken"] = str(start + size)
    return 200, out


_patch()
