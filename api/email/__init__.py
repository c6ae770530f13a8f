"""Outgoing email: messages rendered from templates, handed to a bounded background sender,
delivered by one transport (an outbox directory, SMTP or Amazon SES). docs/accounts.md.
"""
