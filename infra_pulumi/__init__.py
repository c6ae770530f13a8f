"""Slipway's AWS infrastructure as a Pulumi program: `__main__` composes the components of
`components/` from a typed stack configuration (config.py) for the dev, staging and prod stacks.

Beside the program: the CrossGuard policy pack (policies/), the offline plan and cost estimate
(plan.py, cost.py), local rehearsals of what a stack runs (rehearsal/), and the GitHub
governance project (github/).
"""
