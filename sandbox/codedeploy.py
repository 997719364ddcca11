"""CodeDeploy's ECS blue/green deployments as AWS runs them, where moto falls short.

moto's CodeDeploy stores a deployment and forgets it: any number can run at
once in one group, BatchGetDeploymentGroups is missing, a group never learns
its target revision or last deployment, ids are UUIDs and times are strings
(AWS: `d-` and nine characters, epoch seconds, which the Rust SDK insists on).
Patched here to behave as CodeDeploy does:

- a group with a deployment that has not ended (Created, Queued, InProgress,
  Baking, Ready) refuses another: `DeploymentLimitExceededException`, "The
  Deployment Group 'g' already has an active Deployment 'd-…'";
- a deployment starts InProgress; an ECS deployment's revision must be an
  AppSpec (`AppSpecContent`, JSON or YAML) naming one `AWS::ECS::Service`
  target with a registered task definition, and a container name and port
  (`InvalidRevisionException`); an unknown deployment configuration is
  refused (`DeploymentConfigDoesNotExistException`); an ECS group without one
  uses `CodeDeployDefault.ECSAllAtOnce`;
- a group reports its `targetRevision`, `lastAttemptedDeployment` and
  `lastSuccessfulDeployment`; its target revision is its last successful
  deployment's (as CodeDeploy's team describes it), not the one in progress,
  so a deployment under way is seen only through the deployment itself
  (GetDeployment);
- `POST /_sandbox/codedeploy/end {"deployment": "d-…", "status": "Succeeded"}`
  ends a deployment as CodeDeploy would after shifting traffic: on success the
  ECS service runs the AppSpec's task definition (the replacement task set is
  now primary), on `Failed` or `Stopped` it keeps what it ran.

And ECS refuses UpdateService with a task definition for a service whose
deployment controller is CODE_DEPLOY, with ECS's message.
"""

import json
import random
import string
import time

import yaml
from moto.codedeploy import models, responses

import ecs_tasks
import hooks
from moto.core.exceptions import JsonRESTError

ACTIVE = ("Created", "Queued", "InProgress", "Baking", "Ready")
ENDED = ("Succeeded", "Failed", "Stopped")
# The predefined deployment configurations of the ECS compute platform.
ECS_CONFIGS = {
    "CodeDeployDefault.ECSAllAtOnce",
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
    "CodeDeployDefault.ECSCanary10Percent5Minutes",
    "CodeDeployDefault.ECSCanary10Percent15Minutes",
}
END_PATH = "/_sandbox/codedeploy/end"


def _error(kind: str, message: str) -> JsonRESTError:
    return JsonRESTError(kind, message)


def deployment_id() -> str:
    return "d-" + "".join(random.choices(string.ascii_uppercase + string.digits, k=9))


def appspec_target(content: str) -> dict:
    """The TargetService properties of an ECS AppSpec; raises when it is not one."""
    try:
        spec = json.loads(content)
    except ValueError:
        try:
            spec = yaml.safe_load(content)
        except yaml.YAMLError as err:
            raise _error("InvalidRevisionException", f"The AppSpec is neither JSON nor YAML: {err}")
    resources = spec.get("Resources") if isinstance(spec, dict) else None
    if not isinstance(resources, list) or len(resources) != 1:
        raise _error("InvalidRevisionException", "The AppSpec must name exactly one resource")
    target = next(iter(resources[0].values()), None) if isinstance(resources[0], dict) else None
    if not isinstance(target, dict) or target.get("Type") != "AWS::ECS::Service":
        raise _error("InvalidRevisionException", "The AppSpec's resource is not of type AWS::ECS::Service")
    properties = target.get("Properties") or {}
    lb = properties.get("LoadBalancerInfo") or {}
    if not properties.get("TaskDefinition") or not lb.get("ContainerName") or not lb.get("ContainerPort"):
        raise _error("InvalidRevisionException",
                     "The AppSpec must give TaskDefinition and LoadBalancerInfo's ContainerName and ContainerPort")
    return properties


def _ecs_backend(account: str, region: str):
    from moto.ecs.models import ecs_backends

    return ecs_backends[account][region]


def _patch_models() -> None:
    original_app_init = models.Application.__init__

    def app_init(self, *args, **kwargs):
        original_app_init(self, *args, **kwargs)
        self.create_time = time.time()

    models.Application.__init__ = app_init

    original_group_init = models.DeploymentGroup.__init__

    def group_init(self, application, name, config, *args, **kwargs):
        if application.compute_platform == "ECS" and not config:
            config = "CodeDeployDefault.ECSAllAtOnce"
        original_group_init(self, application, name, config, *args, **kwargs)
        self.last_attempted = None
        self.last_successful = None

    models.DeploymentGroup.__init__ = group_init

    def last(deployment):
        if deployment is None:
            return {}
        info = {"deploymentId": deployment.deployment_id, "status": deployment.status,
                "createTime": deployment.create_time}
        if deployment.complete_time is not None:
            info["endTime"] = deployment.complete_time
        return info

    original_group_dict = models.DeploymentGroup.to_dict

    def group_dict(self):
        info = original_group_dict(self)
        info["targetRevision"] = self.last_successful.revision if self.last_successful else {}
        info["lastAttemptedDeployment"] = last(self.last_attempted)
        info["lastSuccessfulDeployment"] = last(self.last_successful)
        info["alarmConfiguration"] = self.alarm_configuration if isinstance(self.alarm_configuration, dict) else {}
        return info

    models.DeploymentGroup.to_dict = group_dict

    original_deployment_init = models.DeploymentInfo.__init__

    def deployment_init(self, *args, **kwargs):
        original_deployment_init(self, *args, **kwargs)
        self.deployment_id = deployment_id()
        self.create_time = self.start_time = time.time()
        self.status = "InProgress"

    models.DeploymentInfo.__init__ = deployment_init

    original_deployment_dict = models.DeploymentInfo.to_dict

    def deployment_dict(self):
        info = original_deployment_dict(self)
        # CodeDeploy leaves out what it has nothing for; moto's empty placeholders are not AWS's.
        for key in ("previousRevision", "errorInformation", "rollbackInfo", "relatedDeployments"):
            if not info.get(key):
                info.pop(key, None)
        if getattr(self, "error", None):
            info["errorInformation"] = self.error
        if getattr(self, "rollback_info", None):
            info["rollbackInfo"] = self.rollback_info
        return {k: v for k, v in info.items() if v is not None}

    models.DeploymentInfo.to_dict = deployment_dict

    original_create = models.CodeDeployBackend.create_deployment

    def create_deployment(self, application_name, deployment_group_name, revision, deployment_config_name=None,
                          *args, **kwargs):
        group = self.deployment_groups.get(application_name, {}).get(deployment_group_name)
        if group is not None:
            busy = group.last_attempted
            if busy is not None and busy.status in ACTIVE:
                raise _error("DeploymentLimitExceededException",
                             f"The Deployment Group '{deployment_group_name}' already has an active Deployment "
                             f"'{busy.deployment_id}'")
            if group.application.compute_platform == "ECS":
                if (revision or {}).get("revisionType") != "AppSpecContent":
                    raise _error("InvalidRevisionException", "An ECS deployment's revision must be AppSpecContent")
                target = appspec_target((revision.get("appSpecContent") or {}).get("content", ""))
                try:
                    _ecs_backend(self.account_id, self.region_name).describe_task_definition(target["TaskDefinition"])
                except Exception:
                    raise _error("InvalidRevisionException",
                                 f"The task definition {target['TaskDefinition']} does not exist")
                if deployment_config_name and deployment_config_name not in ECS_CONFIGS:
                    raise _error("DeploymentConfigDoesNotExistException",
                                 f"No deployment configuration found for name: {deployment_config_name}")
        created = original_create(self, application_name, deployment_group_name, revision, deployment_config_name,
                                  *args, **kwargs)
        # moto keyed the deployment by the id it made first; the id it answers is the deployment's own.
        deployment = next(d for d in self.deployments.values() if d.deployment_id == created)
        if group is not None:
            group.last_attempted = deployment
        content = ((revision or {}).get("appSpecContent") or {}).get("content", "")
        try:
            spec = json.loads(content)
        except ValueError:
            spec = yaml.safe_load(content)
        if isinstance(spec, dict):
            hooks.codedeploy_deployment_created(created, spec)
        return created

    models.CodeDeployBackend.create_deployment = create_deployment

    def batch_get_deployment_groups(self, application_name, names):
        self.get_application(application_name)
        found, missing = [], []
        for name in names:
            group = self.deployment_groups.get(application_name, {}).get(name)
            (found if group else missing).append(group or name)
        return found, missing

    models.CodeDeployBackend.batch_get_deployment_groups = batch_get_deployment_groups


def _patch_responses() -> None:
    def batch_get_deployment_groups(self) -> str:
        found, missing = self.codedeploy_backend.batch_get_deployment_groups(
            self._get_param("applicationName"), self._get_param("deploymentGroupNames") or [])
        out = {"deploymentGroupsInfo": [g.to_dict() for g in found]}
        if missing:
            out["errorMessage"] = "; ".join(f"Deployment group {name} does not exist" for name in missing)
        return json.dumps(out)

    responses.CodeDeployResponse.batch_get_deployment_groups = batch_get_deployment_groups

    original_list_groups = responses.CodeDeployResponse.list_deployment_groups

    def list_deployment_groups(self) -> str:
        out = json.loads(original_list_groups(self))
        if not out.get("nextToken"):
            out.pop("nextToken", None)
        return json.dumps(out)

    responses.CodeDeployResponse.list_deployment_groups = list_deployment_groups


def _patch_ecs() -> None:
    from moto.ecs import models as ecs_models
    from moto.ecs.exceptions import InvalidParameterException

    original = ecs_models.EC2ContainerServiceBackend.update_service

    def update_service(self, properties):
        if properties.get("task_definition"):
            service = self._get_service(properties.get("cluster", "default"), properties["service"].split("/")[-1])
            if service.deployment_controller.get("type") == "CODE_DEPLOY":
                raise InvalidParameterException(
                    "Unable to update task definition on services with a CODE_DEPLOY deployment controller. "
                    "Use AWS CodeDeploy to trigger a new deployment.")
        return original(self, properties)

    ecs_models.EC2ContainerServiceBackend.update_service = update_service


def exists(account: str, deployment: str) -> bool:
    return any(d.deployment_id == deployment for backend in models.codedeploy_backends[account].values()
               for d in backend.deployments.values())


def end(account: str, deployment: str, status: str) -> dict:
    """Ends a deployment (see the module's text); returns what it now says."""
    if status not in ENDED:
        raise ValueError(f"status must be one of {', '.join(ENDED)}, not {status!r}")
    for region, backend in models.codedeploy_backends[account].items():
        found = next((d for d in backend.deployments.values() if d.deployment_id == deployment), None)
        if found is None:
            continue
        if found.status not in ACTIVE:
            raise ValueError(f"deployment {deployment} has already ended ({found.status})")
        found.status = status
        found.complete_time = time.time()
        group = found.deployment_group
        if status == "Succeeded":
            group.last_successful = found
            target = appspec_target(found.revision["appSpecContent"]["content"])
            ecs = _ecs_backend(account, region)
            for pair in group.ecs_services:
                service = ecs._get_service(pair["clusterName"], pair["serviceName"])
                service.task_definition = ecs.describe_task_definition(target["TaskDefinition"]).arn
                # The replacement task set takes the traffic; the original one is stopped.
                ecs_tasks.settle(ecs, service, service.task_definition, deployment)
        else:
            found.error = {"code": "HEALTH_CONSTRAINTS" if status == "Failed" else "MANUAL_STOP",
                           "message": f"The deployment {status.lower()} (ended by the sandbox)."}
            automatic = found.auto_rollback_configuration or {}
            wanted = "DEPLOYMENT_FAILURE" if status == "Failed" else "DEPLOYMENT_STOP_ON_REQUEST"
            if automatic.get("enabled") and wanted in (automatic.get("events") or []):
                # ECS blue/green: CodeDeploy routes the traffic back to the original task set.
                found.rollback_info = {"rollbackMessage": f"Deployment {deployment} was rolled back: traffic is back on the original task set."}
        return found.to_dict()
    raise KeyError(f"no deployment {deployment}")


_patch_models()
_patch_responses()
_patch_ecs()
