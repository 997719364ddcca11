#!/usr/bin/env python3
"""The template's parameter contract, checked without AWS: which parameters
each choice of functions needs (CloudFormation `Rules`), and that the SAM
transform (samtranslator, as `sam deploy` runs it) accepts the template for
every choice; and what the accounts' parameters make, in template.yaml and
registry.yaml: the reader role trusts only the listed accounts' watch-rollouts
and may write nothing, each forwarding rule targets exactly its accounts.
cfn-lint checks the rest (make template runs both).

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
    ("many accounts: a registry, followers on either side",
     dict(EVERYTHING, RegistryAccountIds="210987654321", PromoteToAccountIds="123456789012,444455556666",
          PromoteFromAccountIds="111122223333"), []),
    ("deploy-on-push alone, from a registry account",
     only("DeployOnPush", EcsTaskRoleNamePattern="shop-*", RegistryAccountIds="210987654321"), []),
]


def resolved(template_name, params, account="123456789012", names=(
        "ReaderRole", "ForwardOutcomesDownRule", "ForwardOutcomesUpRule", "RegistryPushesBusPolicy",
        "OutcomesFromUpstreamBusPolicy", "ForwardPushesRule", "ForwardPushesRole")):
    """The template's resources with their intrinsics resolved (the IAM proof's resolver), in `account`."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "iam"))
    import prove
    from cfnlint.decode import decode

    template, problems = decode(os.path.join(os.path.dirname(__file__), "..", "..", template_name))
    if problems:
        raise SystemExit(f"{template_name}: {problems}")
    prove.PSEUDO["AWS::AccountId"] = account
    try:
        resolver = prove.Resolver(template, params)
        return {name: resolver.value(r.get("Properties", {})) for name, r in template["Resources"].items()
                if name in names and (not r.get("Condition") or resolver.condition(r["Condition"]))}
    finally:
        prove.PSEUDO["AWS::AccountId"] = "123456789012"


READ_VERBS = ("Describe", "List", "Get", "BatchGet", "Query")


def account_checks():
    """What the accounts' parameters make: the reader role trusts only the listed accounts'
    watch-rollouts and may write nothing; each forwarding rule targets exactly its accounts."""
    found = []
    params = {"EcsTaskRoleNamePattern": "shop-*", "PromoteToAccountIds": "123456789012,444455556666",
              "PromoteFromAccountIds": "111122223333", "RegistryAccountIds": "210987654321"}
    made = resolved("template.yaml", params, account="555566667777")
    trust = made["ReaderRole"]["AssumeRolePolicyDocument"]["Statement"]
    principals = sorted(p for s in trust for p in s["Principal"]["AWS"])
    conditions = [s.get("Condition", {}).get("ArnLike", {}).get("aws:PrincipalArn") for s in trust]
    found.append(("the reader role trusts only the listed accounts' watch-rollouts role",
                  principals == ["111122223333", "123456789012", "444455556666"]
                  and all(c and "WatchRolloutsFunctionRole" in c for c in conditions),
                  f"{principals} {conditions}"))
    actions = [a for p in made["ReaderRole"]["Policies"] for st in p["PolicyDocument"]["Statement"]
               for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])]
    writes = [a for a in actions if not a.split(":")[1].startswith(READ_VERBS)]
    found.append(("the reader role may write nothing", not writes and actions, f"writes {writes}"))
    targets = lambda rule: sorted(t["Arn"].split(":")[4] for t in made[rule]["Targets"])
    found.append(("outcomes go to the followers and back to the upstreams, and only there",
                  targets("ForwardOutcomesDownRule") == ["123456789012", "444455556666"]
                  and targets("ForwardOutcomesUpRule") == ["111122223333"],
                  f"{targets('ForwardOutcomesDownRule')} {targets('ForwardOutcomesUpRule')}"))
    policy = made["RegistryPushesBusPolicy"]["Statement"]
    found.append(("the bus takes the registry's ECR pushes and nothing else of it",
                  policy["Principal"]["AWS"] == ["210987654321"]
                  and policy["Condition"]["StringEquals"]["events:source"] == "aws.ecr", f"{policy}"))
    single = resolved("template.yaml", {"EcsTaskRoleNamePattern": "shop-*"})
    found.append(("one account (no lists): no reader role, no forwarding, no bus policy",
                  not any(n in single for n in ("ReaderRole", "ForwardOutcomesDownRule", "ForwardOutcomesUpRule",
                                                "RegistryPushesBusPolicy", "OutcomesFromUpstreamBusPolicy")), ""))
    registry = resolved("registry.yaml", {"ChildAccountIds": "111122223333,123456789012"}, account="210987654321")
    rule_targets = sorted(t["Arn"].split(":")[4] for t in registry["ForwardPushesRule"]["Targets"])
    role_buses = sorted(r.split(":")[4] for p in registry["ForwardPushesRole"]["Policies"]
                        for st in p["PolicyDocument"]["Statement"] for r in st["Resource"])
    found.append(("registry.yaml forwards pushes to exactly the child accounts",
                  rule_targets == role_buses == ["111122223333", "123456789012"], f"{rule_targets} {role_buses}"))
    return found


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
    for name, ok, why in account_checks():
        ok = bool(ok)
        print(f"{'PASS' if ok else 'FAIL'} template: {name}" + ("" if ok else f": {why}"))
        passed, failed = passed + ok, failed + (not ok)
    print(f"template checks: {passed} of {passed + failed} hold")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
