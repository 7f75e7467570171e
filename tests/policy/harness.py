"""Run a Pulumi program under the SDK's mocks and record every resource it registers.

The mocks echo inputs as outputs and add an ``id`` (as bridged providers do in state), so
stack-level rules can follow id references such as a launch template's security groups.
Unknown provider calls (data sources) raise: a guardrail test must not depend on a cloud.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pulumi


class Recorder(pulumi.runtime.Mocks):
    def __init__(self, project: str, stack: str) -> None:
        self.project, self.stack = project, stack
        self.resources: list[dict] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        rid = f"{args.name}-id"
        props = {**args.inputs, "id": rid}
        self.resources.append({"type": args.typ, "name": args.name, "props": props,
                               "urn": f"urn:pulumi:{self.stack}::{self.project}::{args.typ}::{args.name}"})
        return [rid, props]

    def call(self, args: pulumi.runtime.MockCallArgs):
        raise NotImplementedError(f"provider call {args.token} is not mocked")


def run_program(program: Path, project: str = "policy-test", stack: str = "test") -> list[dict]:
    """Execute ``program`` (a stack's __main__.py) and return the recorded resources."""
    program = Path(program).resolve()
    recorder = Recorder(project, stack)
    pulumi.runtime.set_mocks(recorder, project=project, stack=stack, preview=False)
    cwd = os.getcwd()
    os.chdir(program.parent)  # programs read files (factory.yaml) next to themselves
    try:
        pulumi.runtime.test(lambda: runpy.run_path(str(program), run_name="__main__") and None)()
    finally:
        os.chdir(cwd)
    return recorder.resources
