"""Pulumi entry point (`main: infra_pulumi/` in Pulumi.yaml): read the stack config, build, export.

Pulumi runs this file as a script from this directory; the repository root goes on sys.path so
the package imports resolve the same way in tests and in `pulumi up`.
"""

import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from infra_pulumi.config import from_pulumi
from infra_pulumi.program import build

for _name, _value in build(from_pulumi(), dt.datetime.now(dt.UTC)).items():
    pulumi.export(_name, _value)
