"""The admin API (``/api/v1/``): API keys with scopes, audit log, customers, channels, events, orders, health.

docs/api.md describes it; :mod:`handlers.api.openapi` is its OpenAPI 3.1 document.
"""
