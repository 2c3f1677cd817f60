"""Integrations: outbound webhooks — every domain event, signed (Standard Webhooks), delivered at least once."""
