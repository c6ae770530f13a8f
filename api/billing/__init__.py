"""Billing: Stripe Customers, subscriptions, Checkout, the customer portal and entitlements."""
