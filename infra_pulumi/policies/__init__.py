"""CrossGuard policy pack for the Slipway stacks (see rules.py)."""
