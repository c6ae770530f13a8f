"""CrossGuard policy pack: docs/deploying.md#running-stacks, enforced (mandatory) on every stack.

    pulumi preview --policy-pack infra_pulumi/policies

The rule logic lives in `rules.py` as plain functions and `pack.py` adapts them to
pulumi-policy, so tests exercise the very same code on mocked resources. Optional policy config
`githubRepository` (owner/name) additionally pins the deploy-role trust to one repository (or
`githubFrontendRepository`, whose static-publish role the stack may also hold).
"""

import sys
from pathlib import Path

# The CLI runs this file from the pack directory; make `infra_pulumi` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from infra_pulumi.policies.pack import PACK_NAME, policies

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
