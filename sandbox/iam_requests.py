"""What each request a function sends asks of IAM, as AWS authorizes it.

With NIGHTSHIFT_REQUEST_LOG set to a folder, the sandbox appends, for every
request signed with a function's own access key id (the tests start each
function with AWS_ACCESS_KEY_ID=<function name>), one JSON line per
authorization the request needs: the function (or `role:<name>` for a role a function assumed, such as the
reader role of another account), its account, the action, the resource ARN,
and the condition keys the template's policies read (the resource's tags as
they are before the request, aws:TagKeys, ecs:cluster, s3:prefix,
s3:ResourceAccount, ecs:CreateAction, iam:PassedToService). `make test`'s IAM
proof (tests/iam/prove.py) then checks each line against the function's policy
in the transformed template.

The mapping covers the operations nightshift sends; an operation it does not
know is logged as such, so the proof fails rather than passes it unseen.
"""

import json
import os
import re
import threading
import xml.etree.ElementTree as ElementTree
from urllib.parse import parse_qs, unquote

import accounts

ACCOUNT = "123456789012"
_write_lock = threading.Lock()
# The account of the request being mapped (its signer's): resources are named in it.
_current = threading.local()


def _account():
    return getattr(_current, "account", ACCOUNT)

CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")


def _ecs_backend(region):
    from moto.ecs.models import ecs_backends

    return ecs_backends[_account()][region]


def _cluster_arn(region, cluster):
    if cluster.startswith("arn:"):
        return cluster
    return f"arn:aws:ecs:{region}:{_account()}:cluster/{cluster or 'default'}"


def _cluster_name(cluster):
    return (cluster or "default").split("/")[-1]


def _service_arn(region, cluster, service):
    if service.startswith("arn:"):
        return service
    return f"arn:aws:ecs:{region}:{_account()}:service/{_cluster_name(cluster)}/{service}"


def _resource_tags(region, arn):
    try:
        tags = _ecs_backend(region).list_tags_for_resource(arn) or []
    except Exception:
        return {}
    return {t["key"]: t["value"] for t in tags}


def _with_tags(context, tags):
    for key, value in tags.items():
        context[f"aws:ResourceTag/{key}"] = value
    return context


def _ecs(region, operation, body):
    action = f"ecs:{operation}"
    cluster = body.get("cluster", "default")
    cluster_ctx = {"ecs:cluster": _cluster_arn(region, cluster)}
    if operation in ("ListClusters", "DescribeTaskDefinition"):
        return [(action, "*", {})]
    if operation in ("ListServices", "ListTasks"):
        return [(action, "*", cluster_ctx)]
    if operation == "ListServiceDeployments":
        return [(action, _service_arn(region, cluster, body.get("service", "")), dict(cluster_ctx))]
    if operation in ("DescribeServiceDeployments", "DescribeServiceRevisions"):
        key = "serviceDeploymentArns" if operation == "DescribeServiceDeployments" else "serviceRevisionArns"
        return [(action, arn, {"ecs:cluster": _cluster_arn(region, arn.split(":")[-1].split("/")[1])})
                for arn in body.get(key, [])]
    if operation == "DescribeServices":
        return [(action, _service_arn(region, cluster, s), dict(cluster_ctx)) for s in body.get("services", [])]
    if operation == "DescribeTasks":
        return [(action, t if t.startswith("arn:") else f"arn:aws:ecs:{region}:{_account()}:task/{_cluster_name(cluster)}/{t}",
                 dict(cluster_ctx)) for t in body.get("tasks", [])]
    if operation == "UpdateService":
        arn = _service_arn(region, cluster, body.get("service", ""))
        # The roles of the task definition were passed when it was registered.
        return [(action, arn, _with_tags(dict(cluster_ctx), _resource_tags(region, arn)))]
    if operation in ("TagResource", "UntagResource"):
        arn = body.get("resourceArn", "")
        keys = [t["key"] for t in body.get("tags", [])] if operation == "TagResource" else body.get("tagKeys", [])
        context = _with_tags({"aws:TagKeys": keys}, _resource_tags(region, arn))
        if ":service/" in arn:
            context["ecs:cluster"] = _cluster_arn(region, arn.split(":service/")[1].split("/")[0])
        return [(action, arn, context)]
    if operation == "RegisterTaskDefinition":
        found = [(action, "*", {})]
        family = body.get("family", "")
        tags = body.get("tags") or []
        if tags:
            found.append(("ecs:TagResource", f"arn:aws:ecs:{region}:{_account()}:task-definition/{family}:*",
                          {"ecs:CreateAction": "RegisterTaskDefinition", "aws:TagKeys": [t["key"] for t in tags]}))
        for role in (body.get("taskRoleArn"), body.get("executionRoleArn")):
            if role:
                found.append(("iam:PassRole", role, {"iam:PassedToService": "ecs-tasks.amazonaws.com"}))
        return found
    return [(f"unknown:ecs:{operation}", "*", {})]


def _aas(region, operation, body):
    action = f"application-autoscaling:{operation}"
    if operation == "DescribeScalableTargets":
        return [(action, "*", {})]
    if operation == "RegisterScalableTarget":
        # The target's ARN has an id AWS makes; any target of the account and region.
        context = {"application-autoscaling:service-namespace": body.get("ServiceNamespace", ""),
                   "application-autoscaling:scalable-dimension": body.get("ScalableDimension", "")}
        return [(action, f"arn:aws:application-autoscaling:{region}:{_account()}:scalable-target/0123abcd", context)]
    return [(f"unknown:{action}", "*", {})]


def _ecr(region, operation, body):
    action = f"ecr:{operation}"
    if operation in ("DescribeImages", "BatchGetImage", "GetDownloadUrlForLayer"):
        repository = body.get("repositoryName", "")
        account = body.get("registryId") or _account()
        return [(action, f"arn:aws:ecr:{region}:{account}:repository/{repository}", {})]
    return [(f"unknown:{action}", "*", {})]


def _codedeploy_tags(region, arn):
    """A CodeDeploy application's or deployment group's tags, as aws:ResourceTag/* keys."""
    from moto.codedeploy.models import codedeploy_backends

    try:
        tags = codedeploy_backends[_account()][region].list_tags_for_resource(arn).get("Tags", [])
    except Exception:
        return {}
    return {f"aws:ResourceTag/{t['Key']}": t["Value"] for t in tags}


def _codedeploy(region, operation, body):
    action = f"codedeploy:{operation}"
    arn = f"arn:aws:codedeploy:{region}:{_account()}"
    application = body.get("applicationName", "")
    if operation == "ListApplications":
        return [(action, "*", {})]
    if operation == "BatchGetApplications":
        return [(action, f"{arn}:application:{name}", {}) for name in body.get("applicationNames", [])]
    if operation == "ListDeploymentGroups":
        return [(action, f"{arn}:application:{application}", {})]
    if operation == "BatchGetDeploymentGroups":
        return [(action, f"{arn}:deploymentgroup:{application}/{name}", {})
                for name in body.get("deploymentGroupNames", [])]
    if operation in ("GetDeployment", "PutLifecycleEventHookExecutionStatus"):
        from moto.codedeploy.models import codedeploy_backends

        wanted = body.get("deploymentId", "")
        found = next((d for d in codedeploy_backends[_account()][region].deployments.values()
                      if d.deployment_id == wanted), None)
        group = f"{found.application_name}/{found.deployment_group_name}" if found else "unknown"
        return [(action, f"{arn}:deploymentgroup:{group}", {})]
    if operation == "CreateDeployment":
        # CodeDeploy also asks that the caller may read the configuration and register the revision.
        from moto.codedeploy.models import codedeploy_backends

        name = body.get("deploymentGroupName", "")
        config = body.get("deploymentConfigName")
        if not config:
            group = codedeploy_backends[_account()][region].deployment_groups.get(application, {}).get(name)
            config = str(group.deployment_config_name) if group else "unknown"
        group_arn, application_arn = f"{arn}:deploymentgroup:{application}/{name}", f"{arn}:application:{application}"
        return [(action, group_arn, _codedeploy_tags(region, group_arn)),
                ("codedeploy:GetDeploymentConfig", f"{arn}:deploymentconfig:{config}", {}),
                ("codedeploy:RegisterApplicationRevision", application_arn, _codedeploy_tags(region, application_arn))]
    return [(f"unknown:{action}", "*", {})]


def _cloudwatch(region, operation, body):
    action = f"cloudwatch:{operation}"
    alarm = f"arn:aws:cloudwatch:{region}:{_account()}:alarm:"
    if operation == "DescribeAlarms":
        names = body.get("AlarmNames") or []
        return [(action, f"{alarm}{name}", {}) for name in names] or [(action, f"{alarm}*", {})]
    if operation == "DescribeAlarmHistory":
        return [(action, f"{alarm}{body.get('AlarmName') or '*'}", {})]
    return [(f"unknown:{action}", "*", {})]


def _ssm(region, operation, body):
    action = f"ssm:{operation}"
    if operation == "GetParameter":
        # A name that starts with / makes the ARN parameter/<path>; one without, parameter/<name>.
        name = body.get("Name", "").lstrip("/")
        return [(action, f"arn:aws:ssm:{region}:{_account()}:parameter/{name}", {})]
    return [(f"unknown:{action}", "*", {})]


def _events(region, operation, body):
    action = f"events:{operation}"
    if operation == "PutEvents":
        return [(action, f"arn:aws:events:{region}:{_account()}:event-bus/{e.get('EventBusName') or 'default'}",
                 {"events:source": e.get("Source", ""), "events:detail-type": e.get("DetailType", "")})
                for e in body.get("Entries", [])]
    return [(f"unknown:{action}", "*", {})]


def _sts(raw):
    form = parse_qs((raw or b"").decode("utf-8", "replace"))
    action = form.get("Action", [""])[0]
    if action == "AssumeRole":
        return [("sts:AssumeRole", form.get("RoleArn", [""])[0], {})]
    return [(f"unknown:sts:{action}", "*", {})]


def _scheduler(region, method, path, raw):
    # REST-JSON: the operation is the method and path.
    found = re.match(r"^/schedules/([^/]+)$", path)
    if method == "POST" and found:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        group = body.get("GroupName") or "default"
        needs = [("scheduler:CreateSchedule", f"arn:aws:scheduler:{region}:{_account()}:schedule/{group}/{found.group(1)}",
                  {})]
        role = (body.get("Target") or {}).get("RoleArn")
        if role:
            needs.append(("iam:PassRole", role, {"iam:PassedToService": "scheduler.amazonaws.com"}))
        return needs
    return [(f"unknown:scheduler:{method} {path}", "*", {})]


def _dynamodb(region, operation, body):
    """DynamoDB authorizes each table a request reads or writes, with the
    partition keys it touches as `dynamodb:LeadingKeys` (the state table's `pk`)."""
    def table_arn(name):
        return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{_account()}:table/{name}"

    def leading(key):
        return (key or {}).get("pk", {}).get("S")

    action = f"dynamodb:{operation}"
    if operation == "BatchGetItem":
        return [(action, table_arn(name), {"dynamodb:LeadingKeys": sorted({leading(k) for k in spec.get("Keys", [])})})
                for name, spec in body.get("RequestItems", {}).items()]
    table = table_arn(body.get("TableName", ""))
    if operation in ("GetItem", "DeleteItem", "UpdateItem"):
        return [(action, table, {"dynamodb:LeadingKeys": [leading(body.get("Key"))]})]
    if operation == "PutItem":
        return [(action, table, {"dynamodb:LeadingKeys": [leading(body.get("Item"))]})]
    if operation == "Query":
        # The partition key's value, as the key condition `#pk = :pk` names it.
        values = body.get("ExpressionAttributeValues", {})
        return [(action, table, {"dynamodb:LeadingKeys": [v.get("S") for k, v in values.items() if k == ":pk"]})]
    return [(f"unknown:dynamodb:{operation}", table, {})]


def _s3(method, path, query, raw):
    parts = unquote(path).lstrip("/").split("/", 1)
    bucket, key = parts[0], (parts[1] if len(parts) > 1 else "")
    bucket_arn = f"arn:aws:s3:::{bucket}"
    context = {"s3:ResourceAccount": _account()}
    q = parse_qs(query, keep_blank_values=True)
    version = q.get("versionId", [None])[0]
    if not key:
        if method == "GET" and "lifecycle" in q:
            return [("s3:GetLifecycleConfiguration", bucket_arn, context)]
        if method == "PUT" and "lifecycle" in q:
            return [("s3:PutLifecycleConfiguration", bucket_arn, context)]
        if method == "GET" and "tagging" in q:
            return [("s3:GetBucketTagging", bucket_arn, context)]
        if method == "GET" and "versions" in q:
            return [("s3:ListBucketVersions", bucket_arn, dict(context, **{"s3:prefix": q.get("prefix", [""])[0]}))]
        if method == "GET":
            return [("s3:ListBucket", bucket_arn, dict(context, **{"s3:prefix": q.get("prefix", [""])[0]}))]
        if method == "POST" and "delete" in q:
            found = []
            for obj in ElementTree.fromstring(raw).iter():
                if not obj.tag.endswith("Object"):
                    continue
                name = next((c.text or "" for c in obj if c.tag.endswith("Key")), "")
                has_version = any(c.tag.endswith("VersionId") for c in obj)
                action = "s3:DeleteObjectVersion" if has_version else "s3:DeleteObject"
                found.append((action, f"{bucket_arn}/{name}", dict(context)))
            return found
        return [(f"unknown:s3:{method} bucket {query}", bucket_arn, context)]
    object_arn = f"{bucket_arn}/{key}"
    if method in ("GET", "HEAD"):
        return [("s3:GetObjectVersion" if version else "s3:GetObject", object_arn, context)]
    if method == "PUT":
        return [("s3:PutObject", object_arn, context)]
    if method == "DELETE":
        return [("s3:DeleteObjectVersion" if version else "s3:DeleteObject", object_arn, context)]
    return [(f"unknown:s3:{method} object", object_arn, context)]


def authorizations(environ, raw):
    """The function that signed the request, and what IAM must allow for it;
    `None` for a request not signed by a function (the tests' own)."""
    found = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not found:
        return None
    key, region, service = found.groups()
    account, principal, function = accounts.caller(key)
    if function is None:
        # A role assumed by a function (a reader role): its requests are checked against that role.
        role = principal.split("/")[-1] if ":role/" in principal else ""
        if not role or role == "nightshift-tests":
            return None
        function = f"role:{role}"
    _current.account = account
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    operation = target.rpartition(".")[2]
    try:
        body = json.loads(raw or b"{}") if target else {}
    except ValueError:
        body = {}
    if service == "ecs":
        needs = _ecs(region, operation, body)
    elif service == "application-autoscaling":
        needs = _aas(region, operation, body)
    elif service == "ecr":
        needs = _ecr(region, operation, body)
    elif service == "ssm":
        needs = _ssm(region, operation, body)
    elif service == "codedeploy":
        needs = _codedeploy(region, operation, body)
    elif service == "dynamodb":
        needs = _dynamodb(region, operation, body)
    elif service == "monitoring":
        needs = _cloudwatch(region, operation, body)
    elif service == "events":
        needs = _events(region, operation, body)
    elif service == "sts":
        needs = _sts(raw)
    elif service == "scheduler":
        needs = _scheduler(region, environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""), raw)
    elif service == "s3":
        needs = _s3(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), raw)
    else:
        needs = [(f"unknown:{service}:{operation}", "*", {})]
    return function, needs


def settings(environ):
    """The function's settings, from the session token the tests give it."""
    token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN", "")
    if not token.startswith("nightshift-"):
        return {}
    try:
        return json.loads(bytes.fromhex(token[len("nightshift-"):]).decode("utf-8"))
    except ValueError:
        return {}


def record(environ, raw):
    """Appends the request's authorizations to the log, when one is asked for."""
    folder = os.environ.get("NIGHTSHIFT_REQUEST_LOG")
    if not folder:
        return
    found = authorizations(environ, raw)
    if found is None:
        return
    function, needs = found
    env = settings(environ)
    account = _account()
    lines = [json.dumps({"function": function, "account": account, "settings": env, "action": a, "resource": r,
                         "context": c}) for a, r, c in needs]
    os.makedirs(folder, exist_ok=True)
    with _write_lock, open(os.path.join(folder, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as out:
        for line in lines:
            out.write(line + "\n")
