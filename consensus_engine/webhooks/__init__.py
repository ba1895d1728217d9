"""Webhooks: telling a tenant's endpoints that its runs ended, signed and retried.

The events are the run's terminal statuses; deliveries follow the Standard Webhooks
conventions (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
"""
