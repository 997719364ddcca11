#!/usr/bin/env python3
"""The template's parameter contract, checked without AWS: which parameters
each choice of functions needs (CloudFormation `Rules`), and that the SAM
transform (samtranslator, as `sam deploy` runs it) accepts the template for
every choice. cfn-lint checks the rest (make template runs both).

Prints one line per check and a count; exits non-zero on a failure."""

import sys

from samtemplate import load, transformed

FUNCTIONS = ["ExpireLogs", "DeployOnPush", "ScaleToZero", "ScaleOnIngress", "ResetDataspace", "WatchRollouts",
             "VerifyRollout"]


def value(expr, params):
    """The few intrinsics the Rules use, evaluated."""
    if isinstance(expr, dict):
        (name, arg), = expr.items()
        if name == "Ref":
            return params[arg]
        if name == "Fn::Equals":
            return value(arg[0], params) == value(arg[1], params)
        if name == "Fn::Not":
            return not value(arg[0], params)
        raise ValueError(f"intrinsic {name} not understood here")
    return expr


def parameters(template, given):
    params = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    params.update(given)
    missing = [name for name, p in template["Parameters"].items() if "Default" not in p and name not in given]
    return params, missing


def refused(template, given):
    """What CloudFormation would say before creating anything: missing
    parameters, and the assertions of Rules whose condition holds."""
    params, missing = parameters(template, given)
    why = [f"parameter {name} has no value" for name in missing]
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not value(rule["RuleCondition"], params):
            continue
        why += [a["AssertDescription"] for a in rule["Assertions"] if not value(a["Assert"], params)]
    return why


def only(function, **extra):
    given = {f"Enable{f}": "true" if f == function else "false" for f in FUNCTIONS}
    given.update(extra)
    return given


EVERYTHING = {
    "LogBucketName": "grafana-logs",
    "EcsTaskRoleNamePattern": "shop-*",
    "IngressBucketName": "dagster-ingress",
    "DataspaceManifest": "s3://mvd-config/manifests/mvd.json",
    "DataspaceBucketPattern": "mvd-*",
}

CASES = [
    ("every function, every parameter they need", EVERYTHING, []),
    ("every function, no parameters", {}, ["expire-logs needs LogBucketName", "deploy-on-push needs EcsTaskRoleNamePattern",
                                          "scale-on-ingress needs IngressBucketName", "reset-dataspace needs DataspaceManifest",
                                          "reset-dataspace needs DataspaceBucketPattern"]),
    ("expire-logs alone, with the log bucket", only("ExpireLogs", LogBucketName="grafana-logs"), []),
    ("expire-logs alone, without the log bucket", only("ExpireLogs"), ["expire-logs needs LogBucketName"]),
    ("deploy-on-push alone, with a role pattern", only("DeployOnPush", EcsTaskRoleNamePattern="ecs/shop-*"), []),
    ("scale-to-zero alone, nothing else", only("ScaleToZero"), []),
    ("scale-on-ingress alone, with its bucket", only("ScaleOnIngress", IngressBucketName="dagster-ingress"), []),
    ("reset-dataspace alone, without its bucket pattern",
     only("ResetDataspace", DataspaceManifest="s3://mvd-config/m.json"), ["reset-dataspace needs DataspaceBucketPattern"]),
    ("watch-rollouts alone, nothing else", only("WatchRollouts"), []),
    ("verify-rollout alone, nothing else", only("VerifyRollout"), []),
    ("nothing enabled", only("None"), []),
]


def main():
    passed = failed = 0
    for name, given, expected in CASES:
        template = load()
        why = refused(template, given)
        ok = len(why) == len(expected) and all(any(e in w for w in why) for e in expected)
        if ok and not why:
            # CloudFormation would go on: the SAM transform must take it.
            try:
                params, _ = parameters(template, given)
                transformed(template, params)
            except Exception as err:  # the transform's own errors say what is wrong
                ok, why = False, [f"the SAM transform refused it: {err}"]
        print(f"{'PASS' if ok else 'FAIL'} template: {name}" + ("" if ok else f": {why}"))
        passed, failed = passed + ok, failed + (not ok)
    print(f"template checks: {passed} of {passed + failed} hold")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
