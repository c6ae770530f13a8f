"""Payments: the server-side price catalog, one-off PaymentIntents with Idempotency-Key
replay, the status state machine, the verified Stripe webhook and refunds.

The Stripe gateway (stripe_gateway.py) is the only module that talks to Stripe; billing builds
on it for subscriptions.
"""
