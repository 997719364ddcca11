"""Several accounts in one sandbox, with the grants between them checked.

moto acts in the account of the credentials a request is signed with (an
assumed role's account), and checks no trust policy. Here:

* who signed a request: a function signs with its name as access key id (the
  sandbox's default account, as the role `nightshift-<Function>Role-SANDBOX`),
  or with the credentials of a role assumed through STS (its role and session);
* STS AssumeRole is refused, as IAM refuses it, unless the role exists in its
  account and its trust policy lets the caller assume it (the principal's
  account or ARN, and the `aws:PrincipalArn` conditions ArnLike/ArnEquals/
  StringLike/StringEquals);
* a stack's cross-account parts are made from the template itself, for an
  account and its parameters, as CloudFormation would make them:

    POST /_sandbox/stack  {"account": "111122223333", "template": "template.yaml",
                           "parameters": {"PromoteToAccountIds": "123456789012"}}

  the state table (`StateTable`), the reader role (`ReaderRole`: its trust and
  inline policies) and its description parameter, the rules that forward
  events to other accounts' default buses, and the default bus's policy
  statements (events.py); `registry.yaml` makes its forwarding rule.
"""

import fnmatch
import json
import os
import sys

DEFAULT_ACCOUNT = "123456789012"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STACK_PATH = "/_sandbox/stack"
# The templates' reader (tests/template) and the IAM proof's intrinsics and policy evaluation (tests/iam).
sys.path[:0] = [os.path.join(ROOT, "tests", "template"), os.path.join(ROOT, "tests", "iam")]

import prove  # noqa: E402  (the template's roles, its intrinsics and IAM's evaluation)

# The function whose name a request is signed with, and its role's logical id in the template.
FUNCTION_ROLES = {name: role for name, role in prove.FUNCTIONS.items() if not name.startswith("role:")}


def function_role_arn(account: str, function: str) -> str:
    """The role a function runs as, named as CloudFormation names a SAM function's role."""
    return f"arn:aws:iam::{account}:role/nightshift-{FUNCTION_ROLES[function]}-SANDBOX0001"


def assumed(access_key: str):
    """The role assumed with this access key: (account, role ARN, session name), or None."""
    from moto.sts.models import sts_backends

    for account, partitions in list(sts_backends.items()):
        for backend in list(partitions.values()):
            role = backend.get_assumed_role_from_access_key(access_key)
            if role is not None:
                return role.role_arn.split(":")[4], role.role_arn, role.session_name
    return None


def caller(access_key: str):
    """(account, principal ARN, function name or None) of a request signed with this key."""
    found = assumed(access_key)
    if found is not None:
        account, role_arn, session = found
        return account, role_arn, session if session in FUNCTION_ROLES else None
    if access_key in FUNCTION_ROLES:
        return DEFAULT_ACCOUNT, function_role_arn(DEFAULT_ACCOUNT, access_key), access_key
    from moto.iam.models import get_account_id_from

    account = get_account_id_from(access_key)
    return account, f"arn:aws:iam::{account}:user/{access_key}", None


def role_refusal(role_arn: str, needs):
    """Why IAM refuses a request signed by a role the sandbox made from a template (the reader
    role), by the role's own inline policies: the first authorization none allows; else None.
    A role the sandbox did not make (the tests' own, the functions' stand-ins) is not checked here:
    the functions' requests are proved against the template after the tests (tests/iam/prove.py)."""
    from moto.iam.models import iam_backends

    account = role_arn.split(":")[4]
    try:
        role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
    except Exception:
        return None
    if not role.policies:
        return None
    allowing = []
    for document in role.policies.values():
        allowing += statements(json.loads(document) if isinstance(document, str) else document)
    for action, resource, context in needs:
        if action.startswith("unknown:") or not prove.allowed(allowing, action, resource, context):
            return (f"User: {role_arn} is not authorized to perform: {action.removeprefix('unknown:')} on resource: "
                    f"{resource} because no identity-based policy allows the {action.removeprefix('unknown:')} action")
    return None


def as_list(value):
    return [value] if isinstance(value, str) else list(value or [])


def statements(policy: dict) -> list:
    """A policy document's statements (one, or a list)."""
    found = policy.get("Statement")
    return [found] if isinstance(found, dict) else list(found or [])


def trust_refusal(principal_arn: str, role_arn: str):
    """Why IAM refuses `principal_arn` AssumeRole of `role_arn`, or None."""
    from moto.iam.models import iam_backends

    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    denied = f"User: {principal_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    try:
        role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
    except Exception:
        return denied
    try:
        policy = json.loads(role.assume_role_policy_document)
    except (TypeError, ValueError):
        return denied
    caller_account = principal_arn.split(":")[4]
    allowed = False
    for statement in statements(policy):
        if not any(fnmatch.fnmatchcase("sts:assumerole", a.lower()) for a in as_list(statement.get("Action"))):
            continue
        principal = statement.get("Principal", {})
        names = ["*"] if principal == "*" else as_list(principal.get("AWS")) if isinstance(principal, dict) else []
        if not any(n in ("*", caller_account, f"arn:aws:iam::{caller_account}:root", principal_arn) for n in names):
            continue
        holds = True
        for operator, keys in (statement.get("Condition") or {}).items():
            for key, wanted in keys.items():
                if key.lower() != "aws:principalarn":
                    holds = False  # a condition the sandbox cannot evaluate refuses, as a missing key does
                    continue
                wanted = as_list(wanted)
                if operator in ("ArnLike", "StringLike"):
                    holds = holds and any(fnmatch.fnmatchcase(principal_arn, w) for w in wanted)
                elif operator in ("ArnEquals", "StringEquals"):
                    holds = holds and principal_arn in wanted
                else:
                    holds = False
        if holds:
            if statement.get("Effect") == "Deny":
                return denied
            allowed = True
    return None if allowed else denied


# What the sandbox makes of a stack: the parts that reach across accounts.
MADE = ("AWS::DynamoDB::Table", "AWS::IAM::Role", "AWS::SSM::Parameter", "AWS::Events::Rule", "AWS::Events::EventBusPolicy")


def _load(name: str):
    from cfnlint.decode import decode

    template, problems = decode(os.path.join(ROOT, name))
    if problems:
        raise ValueError(f"{name}: {problems}")
    return template


def deploy(account: str, region: str, template_name: str, parameters: dict, create_table) -> dict:
    """Makes a stack's cross-account parts in `account` (see the module's text); what was made."""
    import events
    from moto.iam.models import iam_backends
    from moto.ssm.models import ssm_backends

    template = _load(template_name)
    saved = dict(prove.PSEUDO)
    prove.PSEUDO.update({"AWS::AccountId": account, "AWS::Region": region})
    try:
        resolver = prove.Resolver(template, {k: str(v) for k, v in parameters.items()})
        made = []
        events.reset_account(account, region)
        for name, resource in template.get("Resources", {}).items():
            condition = resource.get("Condition")
            if condition and not resolver.condition(condition):
                continue
            kind = resource["Type"]
            if kind not in MADE or (kind == "AWS::IAM::Role" and name != "ReaderRole"):
                continue
            props = resolver.value(resource.get("Properties", {}))
            if kind == "AWS::DynamoDB::Table":
                create_table(account, region)
            elif kind == "AWS::IAM::Role" and name == "ReaderRole":
                iam = iam_backends[account]["aws"]
                role_name = props["RoleName"]
                try:
                    iam.delete_role_policy(role_name, "Read")
                    iam.delete_role(role_name)
                except Exception:
                    pass
                iam.create_role(role_name, json.dumps(props["AssumeRolePolicyDocument"]), "/", None, "", [], None)
                for policy in props.get("Policies", []):
                    iam.put_role_policy(role_name, policy["PolicyName"], json.dumps(policy["PolicyDocument"]))
            elif kind == "AWS::SSM::Parameter":
                ssm_backends[account][region].put_parameter(
                    props["Name"], props.get("Description", ""), props["Value"], props.get("Type", "String"),
                    None, None, True, [], "text", None, None)
            elif kind == "AWS::Events::Rule":
                targets = [t["Arn"].split(":")[4] for t in props.get("Targets", []) if ":event-bus/" in t["Arn"]]
                if targets:
                    events.add_rule(account, region, props.get("Name", name), props["EventPattern"], targets)
            elif kind == "AWS::Events::EventBusPolicy":
                statement = props["Statement"]
                principals = as_list(statement["Principal"]["AWS"])
                source = (statement.get("Condition") or {}).get("StringEquals", {}).get("events:source")
                events.add_bus_policy(account, region, props["StatementId"], principals, source)
            else:
                continue
            made.append(name)
        return {"made": made}
    finally:
        prove.PSEUDO.clear()
        prove.PSEUDO.update(saved)
