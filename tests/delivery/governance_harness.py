"""Runs the `slipway-github` program under Pulumi mocks and prints what it registered, as JSON.

Run in a subprocess (`python -m tests.delivery.governance_harness < scenario.json`): Pulumi's
mock runtime is process-global state, and the AWS stacks' tests in tests/infra set their own.
The scenario gives the stack config, which keys are secrets, and the outputs of the slipway
stacks that StackReferences resolve to.
"""

from __future__ import annotations

import json
import runpy
import sys
from typing import Any

import pulumi

PROGRAM = "infra_pulumi.github.__main__"


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, stack_outputs: dict[str, dict[str, Any]]) -> None:
        self.stack_outputs = stack_outputs
        self.resources: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        self.resources.append({"type": args.typ, "name": args.name, "inputs": args.inputs})
        state = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            state["outputs"] = self.stack_outputs.get(args.inputs["name"], {})
        if args.typ == "github:index/repository:Repository":
            state["nodeId"] = f"node-{args.inputs['name']}"
        return f"{args.name}-id", state

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        self.calls.append({"token": args.token, "args": args.args})
        if args.token == "github:index/getTeam:getTeam":
            slug = args.args["slug"]
            return {"id": str(1000 + len(slug)), "slug": slug}, []
        return {}, []


def main() -> int:
    scenario = json.load(sys.stdin)
    mocks = RecordingMocks(scenario.get("stack_outputs", {}))
    pulumi.runtime.set_all_config(scenario["config"], scenario.get("secret_keys", []))
    pulumi.runtime.set_mocks(mocks, project="slipway-github", stack="org", preview=False)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run_program() -> pulumi.Output[Any]:
        namespace = runpy.run_module(PROGRAM, run_name="__pulumi_program__")
        governance = namespace["governance"]
        return pulumi.Output.all(governance.repository_names)

    try:
        run_program()
    except Exception as error:  # reported to the test, which asserts on the message
        json.dump({"error": f"{type(error).__name__}: {error}"}, sys.stdout)
        return 0
    json.dump({"resources": mocks.resources, "calls": mocks.calls}, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
