"""AWS's input rules, which moto does not check, for the sandbox.

Every ECS, ECR, Application Auto Scaling, CodeDeploy, SSM, DynamoDB, CloudWatch and EventBridge request (JSON
1.1 and 1.0 protocols, the operation in X-Amz-Target) is checked against the service's published API
model, as botocore ships it: required members, string lengths, number ranges,
list and map sizes, enums and patterns. What AWS would refuse is refused with
AWS's answer: a 400 `ValidationException` whose message has the shape AWS
gives ("1 validation error detected: Value 'x' at 'tags.1.member.value' failed
to satisfy constraint: ..."). On top of the model, the rules ECS states in its
documentation but not in the model: no tag key starting with `aws:` (any case)
and at most 50 tags on a resource (`InvalidParameterException`).
"""

import json

import botocore.loaders
import regex

# The services checked: X-Amz-Target prefix -> botocore service name.
TARGETS = {
    "AmazonEC2ContainerServiceV20141113": "ecs",
    "AnyScaleFrontendService": "application-autoscaling",
    "CodeDeploy_20141006": "codedeploy",
    "AmazonSSM": "ssm",
    "DynamoDB_20120810": "dynamodb",
    "GraniteServiceVersion20100801": "cloudwatch",
    "AWSEvents": "events",
    "AmazonEC2ContainerRegistry_V20150921": "ecr",
}

MAX_TAGS = 50

_loader = botocore.loaders.Loader()
_models: dict[str, dict] = {}
_patterns: dict[str, "regex.Pattern"] = {}


def _model(service: str) -> dict:
    if service not in _models:
        _models[service] = _loader.load_service_model(service, "service-2")
    return _models[service]


def _pattern(java: str) -> "regex.Pattern":
    """A model's (Java) pattern as a Python `regex` pattern, matched whole."""
    if java not in _patterns:
        # Java writes a supplementary range as a surrogate pair range.
        python = java.replace("\\uD800\\uDC00-\\uDBFF\\uDFFF", "\\U00010000-\\U0010FFFF")
        _patterns[java] = regex.compile(python)
    return _patterns[java]


def _shown(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class Checker:
    def __init__(self, service: str) -> None:
        self.shapes = _model(service)["shapes"]
        self.errors: list[str] = []

    def fail(self, value, path: str, constraint: str) -> None:
        self.errors.append(f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: {constraint}")

    def check(self, shape_name: str, value, path: str) -> None:
        shape = self.shapes[shape_name]
        kind = shape["type"]
        if kind == "structure":
            if not isinstance(value, dict):
                self.fail(value, path, "Member must be a structure")
                return
            for required in shape.get("required", []):
                if value.get(required) is None:
                    self.fail(None, f"{path}.{required}" if path else required, "Member must not be null")
            for name, member in shape.get("members", {}).items():
                if value.get(name) is not None:
                    self.check(member["shape"], value[name], f"{path}.{name}" if path else name)
        elif kind == "list":
            if not isinstance(value, list):
                self.fail(value, path, "Member must be a list")
                return
            self._size(shape, value, path, "length")
            for i, item in enumerate(value, start=1):
                self.check(shape["member"]["shape"], item, f"{path}.{i}.member")
        elif kind == "map":
            if not isinstance(value, dict):
                self.fail(value, path, "Member must be a map")
                return
            self._size(shape, value, path, "length")
            for key, item in value.items():
                self.check(shape["key"]["shape"], key, f"{path}.key")
                self.check(shape["value"]["shape"], item, f"{path}.value")
        elif kind == "string":
            if not isinstance(value, str):
                self.fail(value, path, "Member must be a string")
                return
            self._size(shape, value, path, "length")
            if "enum" in shape and value not in shape["enum"]:
                self.fail(value, path, f"Member must satisfy enum value set: [{', '.join(shape['enum'])}]")
            if "pattern" in shape and not _pattern(shape["pattern"]).fullmatch(value):
                self.fail(value, path, f"Member must satisfy regular expression pattern: {shape['pattern']}")
        elif kind in ("integer", "long"):
            if not isinstance(value, int) or isinstance(value, bool):
                self.fail(value, path, "Member must be a whole number")
                return
            if "min" in shape and value < shape["min"]:
                self.fail(value, path, f"Member must have value greater than or equal to {shape['min']}")
            if "max" in shape and value > shape["max"]:
                self.fail(value, path, f"Member must have value less than or equal to {shape['max']}")
        elif kind == "boolean":
            if not isinstance(value, bool):
                self.fail(value, path, "Member must be a boolean")

    def _size(self, shape: dict, value, path: str, what: str) -> None:
        if "min" in shape and len(value) < shape["min"]:
            self.fail(value, path, f"Member must have {what} greater than or equal to {shape['min']}")
        if "max" in shape and len(value) > shape["max"]:
            self.fail(value, path, f"Member must have {what} less than or equal to {shape['max']}")


def _tag_keys(body: dict) -> list[str]:
    """Every tag key a request sets: ECS's `tags` list, AAS's `Tags` map."""
    tags = body.get("tags")
    if isinstance(tags, list):
        return [t.get("key") for t in tags if isinstance(t, dict) and isinstance(t.get("key"), str)]
    tags = body.get("Tags")
    if isinstance(tags, dict):
        return [k for k in tags if isinstance(k, str)]
    return []


def refusal(target: str, raw: bytes, existing_tag_keys=None):
    """`None` when AWS would take the request, else (status, error type, message).

    `existing_tag_keys(arn)` answers the keys a resource carries now, for the
    50-tags rule of TagResource."""
    prefix, _, operation = target.partition(".")
    service = TARGETS.get(prefix)
    if service is None:
        return None
    model = _model(service)
    if operation not in model["operations"]:
        return None
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return 400, "SerializationException", "the request body is not JSON"
    checker = Checker(service)
    input_shape = model["operations"][operation].get("input", {}).get("shape")
    if input_shape:
        checker.check(input_shape, body, "")
    if checker.errors:
        n = len(checker.errors)
        message = f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(checker.errors)
        return 400, "ValidationException", message
    keys = _tag_keys(body)
    reserved = [k for k in keys if k.lower().startswith("aws:")]
    if reserved:
        kind = "InvalidParameterException" if service == "ecs" else "ValidationException"
        return 400, kind, f"Tag keys beginning with 'aws:' are reserved for AWS use: {reserved[0]}"
    if operation == "TagResource" and existing_tag_keys is not None:
        arn = body.get("resourceArn") or body.get("ResourceARN") or ""
        existing = set(existing_tag_keys(arn))
        total = len(existing | set(keys))
        if total > MAX_TAGS:
            kind = "InvalidParameterException" if service == "ecs" else "TooManyTagsException"
            return 400, kind, f"the resource would carry {total} tags; at most {MAX_TAGS} are allowed"
    return None
