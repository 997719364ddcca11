#!/usr/bin/env python3
"""The GitHub Action (action.yml) and the example workflow that uses it
(docs/examples/deploy-merge.yml), checked without GitHub: both valid against
the schemas GitHub's files follow (check-jsonschema's vendored SchemaStore
copies, no network), every input the workflow gives is one the action takes,
and the action's run step hands the command's words to the binary as a shell
would split them, never evaluating them.

Prints one line per check and a count; exits non-zero on a failure."""

import os
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACTION = os.path.join(ROOT, "action.yml")
WORKFLOW = os.path.join(ROOT, "docs", "examples", "deploy-merge.yml")


def schema_valid(path: str, schema: str) -> str | None:
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, path],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else done.stdout + done.stderr


def inputs_known() -> str | None:
    action = yaml.safe_load(open(ACTION))
    workflow = yaml.safe_load(open(WORKFLOW))
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").split("@")[0].endswith("/nightshift"):
                unknown = set(step.get("with", {})) - set(action["inputs"])
                if unknown:
                    return f"the workflow gives inputs the action does not take: {sorted(unknown)}"
                missing = {k for k, v in action["inputs"].items() if v.get("required")} - set(step.get("with", {}))
                return f"the workflow lacks required inputs: {sorted(missing)}" if missing else None
    return "the workflow does not use the action"


def words_passed_as_typed() -> str | None:
    """Runs the action's run step with a stand-in binary that prints its arguments, one a line."""
    action = yaml.safe_load(open(ACTION))
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "run")
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "bin"))
        fake = os.path.join(tmp, "bin", "nightshift")
        with open(fake, "w") as out:
            out.write("#!/usr/bin/env bash\nprintf '%s\\n' \"$@\"\nexit 3\n")
        os.chmod(fake, 0o755)
        output = os.path.join(tmp, "output")
        command = "hold prod/shop --reason 'release freeze; $(touch pwned)' --for 2h"
        env = dict(os.environ, BIN=tmp, NIGHTSHIFT_STACK="nightshift", REGION="eu-west-1", COMMAND=command,
                   GITHUB_OUTPUT=output)
        done = subprocess.run(["bash", "-c", step["run"]], env=env, capture_output=True, text=True, cwd=tmp)
        expected = ["hold", "prod/shop", "--reason", "release freeze; $(touch pwned)", "--for", "2h"]
        if done.stdout.splitlines() != expected:
            return f"the binary got {done.stdout.splitlines()!r}, not {expected!r} ({done.stderr})"
        if os.path.exists(os.path.join(tmp, "pwned")):
            return "the command's words were evaluated"
        if done.returncode != 3 or open(output).read().strip() != "exit-code=3":
            return f"the exit code was not passed on: {done.returncode}, {open(output).read()!r}"
    return None


CHECKS = [
    ("action.yml is a valid GitHub Action", lambda: schema_valid(ACTION, "vendor.github-actions")),
    ("the example workflow is a valid GitHub workflow", lambda: schema_valid(WORKFLOW, "vendor.github-workflows")),
    ("the workflow gives the action only inputs it takes, and every required one", inputs_known),
    ("the action passes the command's words as typed, never evaluated, and its exit code", words_passed_as_typed),
]


def main() -> int:
    failed = 0
    for name, check in CHECKS:
        problem = check()
        print(f"{'PASS' if problem is None else 'FAIL'} action: {name}" + (f": {problem}" if problem else ""))
        failed += problem is not None
    print(f"action checks: {len(CHECKS) - failed} of {len(CHECKS)} hold")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
