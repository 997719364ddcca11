"""template.yaml as `sam deploy` sees it: decoded, and transformed by
samtranslator for a set of parameters. Shared by the template checks and the
IAM proof."""

import logging
import os

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "..", "template.yaml")


def load():
    """The template, with the S3 URI `sam build` would give each function's code."""
    template, problems = decode(TEMPLATE)
    if problems:
        raise SystemExit(f"{TEMPLATE}: {problems}")
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://nightshift-build/function.zip"
    return template


def transformed(template, params):
    """The SAM transform's output; it raises when the transform refuses."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    logging.disable(logging.WARNING)  # samtranslator's own usage metrics
    return transform(template, params, None)
