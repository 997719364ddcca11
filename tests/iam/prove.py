#!/usr/bin/env python3
"""The IAM proof: every AWS request each function sent in the integration
tests is allowed by that function's own policy in the deployed template, and
nothing it was granted goes unremarked.

`make test` runs the tests with NIGHTSHIFT_REQUEST_LOG set: the sandbox then
logs, for each request a function signed, what IAM must allow (action,
resource ARN, the condition keys the policies read) and the function's
settings (sandbox/iam_requests.py). This script

1. turns each function's settings into the template parameters a team would
   deploy it with, and transforms the template as `sam deploy` does
   (samtranslator);
2. resolves the intrinsics of the function role's inline policies;
3. evaluates each logged request against them, as IAM does for the parts the
   template uses: Allow and Deny, actions and resources with `*` and `?`, and
   the condition operators StringEquals, StringLike, ArnEquals, ArnLike, Null,
   Bool and ForAllValues:StringEquals (multi-valued keys), each key matched
   case-insensitively, a missing key failing all but Null and ForAllValues;
4. prints a request IAM would refuse with the function, action and resource,
   and exits non-zero; lists the actions granted that no request used.

usage: prove.py FOLDER
"""

import fnmatch
import glob
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "template"))
from samtemplate import load, transformed  # noqa: E402

PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "nightshift",
    "AWS::URLSuffix": "amazonaws.com",
}
NO_VALUE = object()

# Who signed (a function, or a role a function assumed: `role:<name>`) -> its role in the template.
FUNCTIONS = {
    "expire-logs": "ExpireLogsFunctionRole",
    "deploy-on-push": "DeployOnPushFunctionRole",
    "scale-to-zero": "ScaleToZeroFunctionRole",
    "scale-on-ingress": "ScaleOnIngressFunctionRole",
    "reset-dataspace": "ResetDataspaceFunctionRole",
    "watch-rollouts": "WatchRolloutsFunctionRole",
    "verify-rollout": "VerifyRolloutFunctionRole",
    # Another account's read-only role, as watch-rollouts assumes it (ReaderRoleName's default).
    "role:nightshift-reader": "ReaderRole",
}


def parameters(function, settings):
    """The parameters a team would deploy this function with, given the
    settings it ran with in the test. The test platform names the shop's task
    roles `<family>-task` and `<family>-execution`, and the dataspace's buckets
    `<participant>-did` and `<participant>-data`: the patterns say so."""
    params = {
        "LogBucketName": "grafana-logs",
        "EcsTaskRoleNamePattern": "*-task",
        "IngressBucketName": "dagster-ingress",
        "DataspaceManifest": "s3://mvd-config/manifests/mvd.json",
        "DataspaceBucketPattern": "*-d*",
    }
    get = settings.get
    params["NotifyParameterPrefix"] = get("NOTIFY_PARAMETER_PREFIX", "/nightshift/notify/")
    params["ChecksParameterPrefix"] = get("CHECKS_PARAMETER_PREFIX", "/nightshift/checks/")
    if function == "expire-logs":
        params.update(LogBucketName=get("LOG_BUCKET", ""), LogPrefix=get("LOG_PREFIX", ""))
    elif function == "deploy-on-push":
        params.update(DeployClusters=get("CLUSTERS", ""), EcsTaskRoleNamePattern="*-*")
    elif function in ("scale-to-zero", "scale-on-ingress"):
        params.update(ScaleClusters=get("CLUSTERS", ""), ScaleGroup=get("SCALE_GROUP", "dagster"),
                      IngressPrefix=get("INGRESS_PREFIX", ""))
    elif function == "reset-dataspace":
        params.update(DataspaceManifest=get("DATASPACE_MANIFEST", ""), DataspaceName=get("DATASPACE_NAME", "mvd"))
    elif function == "watch-rollouts":
        params.update(DeployClusters=get("CLUSTERS", ""), EcsTaskRoleNamePattern="*-*",
                      ReaderRoleName=get("READER_ROLE_NAME", "nightshift-reader"),
                      PromoteToAccountIds=get("PROMOTE_TO_ACCOUNT_IDS", ""),
                      # The accounts it may read: any the tests' services follow.
                      PromoteFromAccountIds=get("PROMOTE_FROM_ACCOUNT_IDS", "111122223333"))
    elif function.startswith("role:"):
        # The reader role exists where another account follows this one's services.
        params.update(PromoteToAccountIds="123456789012", ReaderRoleName=function[len("role:"):])
    if function == "deploy-on-push":
        params["RegistryAccountIds"] = get("REGISTRY_ACCOUNT_IDS", "")
    return params


class Resolver:
    """The intrinsics of a transformed template, for its parameters."""

    def __init__(self, template, params):
        self.template = template
        self.params = {}
        for name, spec in template.get("Parameters", {}).items():
            raw = params.get(name, spec.get("Default", ""))
            self.params[name] = raw.split(",") if spec.get("Type") == "CommaDelimitedList" else str(raw)
        self.conditions = {}

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self.conditions[name]

    def ref(self, name):
        if name in PSEUDO:
            return PSEUDO[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            return self.params[name]
        return name  # a resource: its logical id stands for its name

    def sub(self, text, local):
        out, i = "", 0
        while i < len(text):
            if text.startswith("${!", i):
                out += "${"
                i += 3
            elif text.startswith("${", i):
                end = text.index("}", i)
                name = text[i + 2:end]
                if name in local:
                    value = local[name]
                elif "." in name and name.split(".")[0] not in PSEUDO:
                    value = f"arn:aws:fake:us-east-1:123456789012:{name.split('.')[0]}"
                else:
                    value = self.ref(name)
                out += str(value)
                i = end + 1
            else:
                out += text[i]
                i += 1
        return out

    def value(self, node):
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::Or":
                return any(self.value(a) for a in arg)
            if key == "Fn::And":
                return all(self.value(a) for a in arg)
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.value(arg[1]))
            if key == "Fn::Split":
                return str(self.value(arg[1])).split(arg[0])
            if key == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if key == "Fn::GetAtt":
                target = arg if isinstance(arg, list) else arg.split(".")
                kind = self.template.get("Resources", {}).get(target[0], {}).get("Type")
                if kind == "AWS::DynamoDB::Table" and target[1] == "Arn":
                    # Its name is its logical id here (as the sandbox's table is named).
                    return f"arn:aws:dynamodb:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:table/{target[0]}"
                return f"arn:aws:fake:us-east-1:123456789012:{target[0]}"
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                return self.sub(arg[0], {k: self.value(v) for k, v in arg[1].items()})
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NO_VALUE}


def statements(function, params, account="123456789012", cache={}):
    """The role's inline policy statements, resolved in its account."""
    key = (function, account, json.dumps(params, sort_keys=True))
    if key not in cache:
        output = transformed(load(), params)
        saved = PSEUDO["AWS::AccountId"]
        PSEUDO["AWS::AccountId"] = account
        try:
            resolver = Resolver(output, params)
            role = output["Resources"][FUNCTIONS[function]]
            found = []
            for policy in resolver.value(role["Properties"].get("Policies", [])):
                document = policy["PolicyDocument"]
                for statement in document["Statement"]:
                    found.append(statement)
        finally:
            PSEUDO["AWS::AccountId"] = saved
        cache[key] = found
    return cache[key]


def as_list(value):
    return value if isinstance(value, list) else [value]


def wildcard(pattern, text, case=True):
    if not case:
        pattern, text = pattern.lower(), text.lower()
    return fnmatch.fnmatchcase(text, pattern.replace("[", "[[]"))


def condition_holds(operator, key, wanted, context):
    lowered = {k.lower(): v for k, v in context.items()}
    present = key.lower() in lowered
    actual = lowered.get(key.lower())
    wanted = [str(w).lower() if isinstance(w, bool) else str(w) for w in as_list(wanted)]
    if operator == "Null":
        return (not present) == (wanted[0] == "true")
    if operator.startswith("ForAllValues:"):
        inner = operator.split(":", 1)[1]
        return all(condition_holds(inner, key, wanted, {key: v}) for v in as_list(actual or []))
    if not present:
        return False
    values = as_list(actual)
    if operator in ("StringEquals", "ArnEquals"):
        return any(v == w for v in values for w in wanted)
    if operator in ("StringLike", "ArnLike"):
        return any(wildcard(w, v) for v in values for w in wanted)
    if operator == "Bool":
        return any(str(v).lower() == w for v in values for w in wanted)
    raise ValueError(f"condition operator {operator} is not evaluated here")


def matches(statement, action, resource, context):
    if not any(wildcard(a, action, case=False) for a in as_list(statement.get("Action", []))):
        return False
    if not any(wildcard(r, resource) for r in as_list(statement.get("Resource", []))):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, wanted in keys.items():
            if not condition_holds(operator, key, wanted, context):
                return False
    return True


def allowed(statements_, action, resource, context):
    hits = [s for s in statements_ if matches(s, action, resource, context)]
    return any(s["Effect"] == "Allow" for s in hits) and not any(s["Effect"] == "Deny" for s in hits)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.split("usage: ")[1])
    lines = []
    for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            lines += [json.loads(line) for line in f if line.strip()]
    if not lines:
        print("iam proof: no request was logged (run the tests with NIGHTSHIFT_REQUEST_LOG set)")
        sys.exit(1)
    refused, used, seen_with, checked = {}, {}, {}, 0
    for line in lines:
        function = line["function"]
        if function not in FUNCTIONS:
            continue
        params = parameters(function, line["settings"])
        found = statements(function, params, line.get("account", "123456789012"))
        action, resource, context = line["action"], line["resource"], line["context"]
        used.setdefault(function, set()).add(action.lower())
        seen_with.setdefault(function, params)
        checked += 1
        if action.startswith("unknown:") or not allowed(found, action, resource, context):
            refused.setdefault((function, action, resource), context)
    for (function, action, resource), context in sorted(refused.items()):
        print(f"REFUSED iam: {function} may not {action} on {resource} (context {json.dumps(context)})")
    for function in sorted(used):
        params = seen_with[function]
        granted = {a.lower() for s in statements(function, params) if s["Effect"] == "Allow"
                   for a in as_list(s.get("Action", []))}
        unused = sorted(a for a in granted if not any(wildcard(a, u, case=False) for u in used[function]))
        print(f"iam proof: {function}: {len(used[function])} actions used, all allowed"
              if not any(k[0] == function for k in refused) else f"iam proof: {function}: refusals above")
        if unused:
            print(f"  granted, never used in the tests: {', '.join(unused)}")
    missing = sorted(set(FUNCTIONS) - set(used))
    if missing:
        print(f"iam proof: no request logged for {', '.join(missing)}")
    print(f"iam proof: {checked} authorizations checked, {len(refused)} refused")
    sys.exit(1 if refused or missing else 0)


if __name__ == "__main__":
    main()
