"""Reconcile-payments flow: local payments, subscriptions and invoices compared with Stripe;
missed events replayed through the API's own webhook service."""
