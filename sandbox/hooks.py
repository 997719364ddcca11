"""Deployment lifecycle hooks, as ECS and CodeDeploy run them, where moto runs none.

A hook is a Lambda function the deployment invokes. The sandbox cannot run a
function itself, so it queues each invocation for the caller (a test, the
demo), which runs the built function through the Lambda Runtime API and hands
back what it returned:

    GET  /_sandbox/hooks                 {"hooks": [{"id", "kind", "function", "payload", "due_in"}, ...]}
    POST /_sandbox/hooks/answer          {"id": "...", "result": <the function's JSON result>}
                                         or {"id": "...", "error": "<why the invocation failed>"}

ECS (`kind` "ecs"): a service whose `deploymentConfiguration.strategy` is
BLUE_GREEN, CANARY or LINEAR and which has `lifecycleHooks` invokes, on each
UpdateService that starts a rollout, every hook at each of its
`lifecycleStages`, in the stages' order, with ECS's payload (`serviceArn`,
`targetServiceRevisionArn`, `testTrafficWeights`, `productionTrafficWeights`,
`hookDetails`). The result's `hookStatus` decides: SUCCEEDED goes on to the
next hook, and after the last the rollout completes; IN_PROGRESS invokes the
hook again after `callBackDelay` seconds (30 by default), with the
`hookDetails` it returned; FAILED, no `hookStatus`, or a failed invocation
roll the deployment back to the revision before (ECS's rollback for these
strategies, circuit breaker or not).

CodeDeploy (`kind` "codedeploy"): a deployment whose AppSpec names hooks
(`AfterAllowTestTraffic`, ...) invokes each with `{"DeploymentId",
"LifecycleEventHookExecutionId"}`; the function answers through
PutLifecycleEventHookExecutionStatus (`put_status`): `Succeeded` on the last
hook ends the deployment Succeeded, `Failed` ends it Failed (and its automatic
rollback). A second answer to one execution is refused
(LifecycleEventAlreadyCompletedException), an unknown one too
(InvalidLifecycleEventHookExecutionIdException). A failed invocation fails the
deployment, as CodeDeploy does once the hook's hour is up.
"""

import json
import threading
import time
import uuid

PENDING_PATH = "/_sandbox/hooks"
ANSWER_PATH = "/_sandbox/hooks/answer"
STAGES = ("RECONCILE_SERVICE", "PRE_SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT",
          "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT")
STRATEGIES = ("BLUE_GREEN", "CANARY", "LINEAR")
CODEDEPLOY_EVENTS = ("BeforeInstall", "AfterInstall", "AfterAllowTestTraffic", "BeforeAllowTraffic",
                     "AfterAllowTraffic")

_lock = threading.RLock()
# id -> invocation waiting for the caller.
_pending: dict[str, dict] = {}
# (account, region, cluster, service, deployment id) -> the ECS rollout's hooks and where it is.
_ecs: dict[tuple, dict] = {}
# execution id -> the CodeDeploy hook execution.
_executions: dict[str, dict] = {}


class HookError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


def pending() -> list:
    now = time.time()
    with _lock:
        return [{k: v for k, v in p.items() if not k.startswith("_")} | {"due_in": max(0.0, p["_at"] - now)}
                for p in _pending.values()]


def _queue(kind: str, function: str, payload: dict, state: dict, delay: float = 0) -> None:
    invocation = {"id": uuid.uuid4().hex, "kind": kind, "function": function, "payload": payload,
                  "_at": time.time() + delay, "_state": state}
    _pending[invocation["id"]] = invocation


def ecs_rollout_started(account: str, region: str, service, deployment: dict, source_revision: str | None,
                        target_revision: str) -> None:
    """Queues the first hook of a new rollout of a service with an ECS strategy and hooks."""
    config = getattr(service, "deployment_configuration", None) or {}
    if config.get("strategy") not in STRATEGIES:
        return
    hooks = [(stage, hook) for stage in STAGES for hook in config.get("lifecycleHooks") or []
             if stage in (hook.get("lifecycleStages") or [])]
    if not hooks:
        return
    cluster = service.cluster_arn.split("/")[-1]
    key = (account, region, cluster, service.name, deployment["id"])
    with _lock:
        # A newer rollout replaces the one before: its hooks are not invoked again.
        for invocation in list(_pending.values()):
            state = invocation["_state"]
            if state.get("key", ())[:4] == key[:4]:
                _pending.pop(invocation["id"])
        _ecs[key] = {"key": key, "hooks": hooks, "index": 0, "details": {}, "service_arn": service.arn,
                     "target": target_revision, "source": source_revision}
        _queue_ecs(_ecs[key])


def _queue_ecs(state: dict, delay: float = 0) -> None:
    stage, hook = state["hooks"][state["index"]]
    target, source = state["target"], state["source"]
    test_shifted = STAGES.index(stage) >= STAGES.index("TEST_TRAFFIC_SHIFT")
    production_shifted = STAGES.index(stage) >= STAGES.index("PRODUCTION_TRAFFIC_SHIFT")
    weights = lambda shifted: {target: 100 if shifted else 0} | ({source: 0 if shifted else 100} if source else {})
    details = dict(hook.get("hookDetails") or {}) | state["details"]
    payload = {"serviceArn": state["service_arn"], "targetServiceRevisionArn": target,
               "testTrafficWeights": weights(test_shifted), "productionTrafficWeights": weights(production_shifted)}
    if details:
        payload["hookDetails"] = details
    _queue("ecs", hook.get("hookTargetArn", ""), payload, state, delay)


def codedeploy_deployment_created(deployment_id: str, appspec: dict) -> None:
    """Queues the hooks an AppSpec names, in CodeDeploy's order."""
    named = {}
    for entry in appspec.get("Hooks") or []:
        if isinstance(entry, dict):
            named.update(entry)
    order = [(event, named[event]) for event in CODEDEPLOY_EVENTS if event in named]
    if not order:
        return
    with _lock:
        _next_codedeploy({"deployment": deployment_id, "hooks": order, "index": 0})


def _next_codedeploy(state: dict) -> None:
    event, function = state["hooks"][state["index"]]
    execution = uuid.uuid4().hex
    _executions[execution] = {"state": state, "event": event, "status": "InProgress"}
    _queue("codedeploy", function,
           {"DeploymentId": state["deployment"], "LifecycleEventHookExecutionId": execution}, state)


def answer(body: dict, end_ecs, end_codedeploy) -> dict:
    """What the caller's invocation of a hook returned. `end_ecs(key, outcome)`, `end_codedeploy(id, status)`."""
    with _lock:
        invocation = _pending.pop(body["id"], None)
        if invocation is None:
            raise ValueError(f"no hook invocation {body['id']} is waiting")
        state = invocation["_state"]
        result = body.get("result") if isinstance(body.get("result"), dict) else {}
        if invocation["kind"] == "codedeploy":
            if body.get("error"):
                for execution in _executions.values():
                    if execution["state"] is state and execution["status"] == "InProgress":
                        execution["status"] = "Failed"
                end_codedeploy(state["deployment"], "Failed")
                return {"deployment": state["deployment"], "status": "Failed"}
            return {"deployment": state["deployment"], "waiting_for": "PutLifecycleEventHookExecutionStatus"}
        status = None if body.get("error") else result.get("hookStatus")
        if status == "IN_PROGRESS":
            state["details"] = result.get("hookDetails") or {}
            _queue_ecs(state, float(result.get("callBackDelay") or 30))
            return {"hookStatus": status}
        if status == "SUCCEEDED":
            state["index"] += 1
            state["details"] = {}
            if state["index"] < len(state["hooks"]):
                _queue_ecs(state)
                return {"hookStatus": status, "next": state["hooks"][state["index"]][0]}
            ended = end_ecs(state["key"], "COMPLETED")
            return {"hookStatus": status, "rollout": "COMPLETED", "deployments": ended}
        ended = end_ecs(state["key"], "FAILED")
        return {"hookStatus": status or "FAILED", "rollout": "ROLLED_BACK", "deployments": ended}


def put_status(body: dict, end_codedeploy, deployment_exists) -> tuple[int, dict]:
    """CodeDeploy's PutLifecycleEventHookExecutionStatus: (HTTP status, JSON)."""
    deployment, execution_id = body.get("deploymentId"), body.get("lifecycleEventHookExecutionId")
    status = body.get("status")
    if not deployment_exists(deployment):
        return 400, {"__type": "DeploymentDoesNotExistException", "message": f"The deployment {deployment} could not be found."}
    if status not in ("Succeeded", "Failed"):
        return 400, {"__type": "InvalidLifecycleEventHookExecutionStatusException",
                     "message": f"The status {status} is not valid: Succeeded or Failed."}
    with _lock:
        execution = _executions.get(execution_id)
        if execution is None or execution["state"]["deployment"] != deployment:
            return 400, {"__type": "InvalidLifecycleEventHookExecutionIdException",
                         "message": f"{execution_id} is not a lifecycle event hook execution of {deployment}."}
        if execution["status"] != "InProgress":
            return 400, {"__type": "LifecycleEventAlreadyCompletedException",
                         "message": f"The lifecycle event {execution['event']} of {deployment} has already completed."}
        execution["status"] = status
        state = execution["state"]
        if status == "Failed":
            end_codedeploy(deployment, "Failed")
        else:
            state["index"] += 1
            if state["index"] < len(state["hooks"]):
                _next_codedeploy(state)
            else:
                end_codedeploy(deployment, "Succeeded")
    return 200, {"lifecycleEventHookExecutionId": execution_id}


def reset() -> None:
    with _lock:
        _pending.clear()
        _ecs.clear()
        _executions.clear()
