"""Runs one job of a generated GitHub workflow here, the way a GitHub runner runs it.

The `run:` steps are taken from the rendered workflow unchanged and run with
`bash --noprofile --norc -eo pipefail` (the workflows' `defaults.run.shell: bash`), in order,
under their `if:` conditions, in the runner's checkout, with `GITHUB_OUTPUT` read back into
`steps.<id>.outputs`. A `uses:` step runs the test's stand-in for that action (`actions`, by
name without the `@ref`); an action without a stand-in fails the test. `${{ ... }}` expressions
are evaluated over the contexts the test gives (`expressions`, whole expressions or context
paths), `matrix`, `inputs`, `steps` and `github`; any other context path fails the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

STEP_KEYS = {"name", "id", "if", "env", "run", "uses", "with"}
STATUS_FUNCTIONS = ("always()", "success()", "failure()", "cancelled()")


@dataclass
class StepResult:
    name: str
    outcome: str  # success, failure, skipped
    output: str


@dataclass
class JobRun:
    steps: list[StepResult]
    outputs: dict[str, str] = field(default_factory=dict)  # the job's `outputs:`

    @property
    def ok(self) -> bool:
        return all(s.outcome != "failure" for s in self.steps)

    def outcome(self, name_part: str) -> str:
        return next(s.outcome for s in self.steps if name_part in s.name)

    @property
    def output(self) -> str:
        return "\n".join(f"--- {s.name}: {s.outcome}\n{s.output}" for s in self.steps)


class ActionFailed(Exception):
    """Raised by an action's stand-in: the step fails as the real action would, with this message."""


@dataclass
class ActionCall:
    action: str  # e.g. actions/checkout
    inputs: dict[str, str]  # the step's `with:`, expressions evaluated
    workspace: Path  # the runner's checkout directory
    env: dict[str, str]  # the step's environment
    runner: Runner


Action = Callable[[ActionCall], "dict[str, str] | None"]  # returns the step's outputs


def checkout_in_place(call: ActionCall) -> None:
    """actions/checkout of the workflow's own repository, which the runner's checkout already is."""
    assert "repository" not in call.inputs, f"no stand-in for checking out {call.inputs['repository']}"


def _literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _workflow_triggers(workflow: dict) -> dict:
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    return triggers if isinstance(triggers, dict) else {}


class Runner:
    """One job of `workflow` (its id `job_id`), run in `checkout`; `inputs` are the caller's `with:`
    values (themselves expressions) when another workflow calls this one."""

    def __init__(self, workflow: Path, job_id: str, checkout: Path, workdir: Path, expressions: dict[str, str],
                 inputs: dict | None = None, actions: dict[str, Action] | None = None, wrap: list[str] | None = None):
        document = yaml.safe_load(workflow.read_text())
        self.workflow = workflow
        self.job = document["jobs"][job_id]
        self.shell = document["defaults"]["run"]["shell"]
        self.declared_inputs = {name: spec for trigger in ("workflow_call", "workflow_dispatch")
                                for name, spec in ((_workflow_triggers(document).get(trigger) or {})
                                                   .get("inputs") or {}).items()}
        self.checkout = checkout
        self.workdir = workdir
        self.expressions = expressions
        self.inputs = inputs or {}
        self.actions = {"actions/checkout": checkout_in_place, **(actions or {})}
        self.wrap = wrap or []  # a command prefix for every `run:` step (the runner's view of DNS)
        self.path: list[str] = []  # directories an action put on PATH, like GITHUB_PATH
        self._context: dict[str, str] = {}
        self._outcomes: dict[str, str] = {}

    @classmethod
    def called_by(cls, pipeline: Path, caller_id: str, checkout: Path, workdir: Path, expressions: dict[str, str],
                  job_id: str | None = None, actions: dict[str, Action] | None = None,
                  wrap: list[str] | None = None) -> Runner:
        """The job of the workflow that the pipeline's job `caller_id` calls (`uses: ./...`); `job_id`
        names it when the called workflow has more than one."""
        caller = yaml.safe_load(pipeline.read_text())["jobs"][caller_id]
        called = pipeline.parent / Path(caller["uses"]).name
        if job_id is None:
            (job_id,) = yaml.safe_load(called.read_text())["jobs"]
        return cls(called, job_id, checkout, workdir, expressions, caller.get("with", {}), actions, wrap)

    def matrix(self) -> list[dict[str, str]]:
        """The job's matrix entries (`strategy.matrix.include`); one empty entry without a matrix."""
        return self.job.get("strategy", {}).get("matrix", {}).get("include") or [{}]

    # ------------------------------------------------------------------ expressions

    def lookup(self, path: str) -> str:
        if path in self.expressions:
            return self.expressions[path]
        if path in self._context:
            return self._context[path]
        if path.startswith("inputs."):
            name = path.removeprefix("inputs.")
            if name in self.inputs:
                return self.substitute(self.inputs[name])
            assert name in self.declared_inputs, f"the job reads ${{{{ {path} }}}}, which the workflow does not declare"
            return _literal(self.declared_inputs[name].get("default"))  # an input the caller leaves out
        match = re.fullmatch(r"steps\.([\w-]+)\.(outcome|conclusion|outputs\.[\w-]+)", path)
        if match:
            return "" if match.group(2).startswith("outputs.") else self._outcomes.get(match.group(1), "")
        raise AssertionError(f"the job uses ${{{{ {path} }}}}, unknown to this test")

    def evaluate(self, expression: str) -> str:
        """A GitHub expression: literals, context paths, == != && || ! ( ) and the status functions."""
        return _literal(self._value(expression))

    def _value(self, expression: str):
        expression = expression.strip()
        if expression in self.expressions:
            return self.expressions[expression]
        failed = any(outcome == "failure" for outcome in self._outcomes.values())
        functions = {"always": lambda: True, "success": lambda: not failed, "failure": lambda: failed,
                     "cancelled": lambda: False, "startsWith": lambda a, b: str(a).lower().startswith(str(b).lower()),
                     "lookup": self.lookup}
        python = []
        tokens = re.finditer(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<op>&&|\|\||==|!=|!|\(|\)|,)"
                             r"|(?P<name>[A-Za-z_][\w.-]*)(?P<call>\()?|(?P<number>\d+)|(?P<bad>\S))", expression)
        for token in tokens:
            if token["bad"]:
                raise AssertionError(f"this test cannot evaluate {expression!r}")
            if token["string"]:
                python.append(repr(token["string"][1:-1].replace("''", "'")))
            elif token["op"]:
                python.append({"&&": " and ", "||": " or ", "!": " not "}.get(token["op"], token["op"]))
            elif token["call"]:
                assert token["name"] in functions, f"this test cannot evaluate {token['name']}() in {expression!r}"
                python.append(f"{token['name']}(")
            elif token["name"] in ("true", "false", "null"):
                python.append({"true": "True", "false": "False", "null": "None"}[token["name"]])
            elif token["name"]:
                python.append(f"lookup({token['name']!r})")
            else:
                python.append(token["number"])
        return eval("".join(python), {"__builtins__": {}}, functions)  # noqa: S307 (every token checked above)

    def substitute(self, value) -> str:
        return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", lambda match: self.evaluate(match.group(1)), _literal(value))

    def should_run(self, condition) -> bool:
        if condition is None:
            condition = "success()"
        condition = re.sub(r"^\$\{\{\s*(.*?)\s*\}\}$", r"\1", _literal(condition).strip(), flags=re.S)
        if not any(function in condition for function in STATUS_FUNCTIONS):
            condition = f"success() && ({condition})"  # GitHub's implicit status check
        return bool(self._value(condition))

    # ------------------------------------------------------------------ the job

    def run(self, sha: str, extra_env: dict[str, str], event: str = "push", ref: str = "refs/heads/main",
            matrix: dict[str, str] | None = None) -> JobRun:
        runner_temp = self.workdir / f"runner-temp-{uuid.uuid4().hex[:6]}"
        runner_temp.mkdir()
        self.path = []
        self._outcomes = {}
        github = {"sha": sha, "ref": ref, "event_name": event, "ref_name": ref.split("/", 2)[-1],
                  "ref_type": "tag" if ref.startswith("refs/tags/") else "branch"}
        self._context = {**{f"github.{key}": value for key, value in github.items()},
                         **{f"matrix.{key}": _literal(value) for key, value in (matrix or {}).items()}}
        base = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "CI": "true", "GITHUB_ACTIONS": "true",
                "GITHUB_SHA": sha, "GITHUB_REF": ref, "GITHUB_REF_NAME": github["ref_name"],
                "GITHUB_REF_TYPE": github["ref_type"], "GITHUB_EVENT_NAME": event,
                "GITHUB_WORKSPACE": str(self.checkout), "RUNNER_TEMP": str(runner_temp), **extra_env}
        base.update({k: self.substitute(v) for k, v in self.job.get("env", {}).items()})
        results: list[StepResult] = []
        for index, step in enumerate(self.job["steps"]):
            assert set(step) <= STEP_KEYS, f"this test cannot run a step with {set(step) - STEP_KEYS}: {step}"
            step_id = step.get("id", f"__step{index}")
            name = self.substitute(step.get("name", step.get("uses", f"step {index}").split("@")[0]))
            if not self.should_run(step.get("if")):
                self._outcomes[step_id] = "skipped"
                results.append(StepResult(name, "skipped", ""))
                continue
            env = {**base, **{k: self.substitute(v) for k, v in step.get("env", {}).items()}}
            env["PATH"] = os.pathsep.join([*reversed(self.path), env["PATH"]])
            if "uses" in step:
                outcome, output, outputs = self._run_action(step, env)
            else:
                outcome, output, outputs = self._run_script(step, index, env, runner_temp)
            self._outcomes[step_id] = outcome
            self._context.update({f"steps.{step_id}.outputs.{key}": value for key, value in outputs.items()})
            results.append(StepResult(name, outcome, output))
        outputs = {key: self.substitute(value) for key, value in self.job.get("outputs", {}).items()}
        return JobRun(results, outputs)

    def _run_action(self, step: dict, env: dict[str, str]) -> tuple[str, str, dict[str, str]]:
        action = step["uses"].split("@")[0]
        assert action in self.actions, f"this test has no stand-in for the action {action}"
        inputs = {key: self.substitute(value) for key, value in step.get("with", {}).items()}
        try:
            outputs = self.actions[action](ActionCall(action, inputs, self.checkout, env, self)) or {}
        except ActionFailed as failure:
            return "failure", f"{action}: {failure}", {}
        return "success", "", outputs

    def _run_script(self, step: dict, index: int, env: dict[str, str],
                    runner_temp: Path) -> tuple[str, str, dict[str, str]]:
        script = runner_temp / f"step-{index}.sh"
        script.write_text(step["run"])
        output_file = runner_temp / f"step-{index}.output"
        output_file.touch()
        assert self.shell == "bash"
        proc = subprocess.run([*self.wrap, "bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              env={**env, "GITHUB_OUTPUT": str(output_file)}, cwd=self.checkout,
                              capture_output=True, text=True, timeout=900)
        outputs = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
        return ("success" if proc.returncode == 0 else "failure"), proc.stdout + proc.stderr, outputs
