"""The component schemas of the admin API's OpenAPI document (JSON Schema 2020-12, as OpenAPI 3.1 uses)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _nullable(kind: str, **more: Any) -> Schema:
    return {"type": [kind, "null"], **more}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], *, open_: bool = False) -> Schema:
    return {"type": "object", "required": sorted(properties), "properties": properties, "additionalProperties": open_}


def _page(item: str) -> Schema:
    return _object({"items": {"type": "array", "items": _ref(item)}, "next_cursor": _nullable("string")})


TIME = {"type": "string", "format": "date-time"}
NTIME = _nullable("string", format="date-time")
STR = {"type": "string"}
NSTR = _nullable("string")
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object"}
COUNTS: Schema = {"type": "object", "additionalProperties": INT}
REASONS: Schema = {"type": "array", "items": _object({"state": STR, "reason": STR, "count": INT})}

CUSTOMER_FIELDS: dict[str, Schema] = {
    "id": INT,
    "name": NSTR,
    "external_userid": NSTR,
    "openid": NSTR,
    "unionid": NSTR,
    "wecom_friend": BOOL,
    "mp_follower": BOOL,
    "first_channel": NSTR,
    "first_touch_at": NTIME,
    "created_at": TIME,
}
TOUCH_FIELDS: dict[str, Schema] = {
    "id": INT,
    "channel": NSTR,
    "platform": STR,
    "action": STR,
    "staff_userid": NSTR,
    "chat_id": NSTR,
    "first": BOOL,
    "at": TIME,
}

CAMPAIGN_FIELDS: dict[str, Schema] = {
    "id": STR,
    "name": STR,
    "starts_at": TIME,
    "ends_at": TIME,
    "enabled": BOOL,
    "state": {"enum": ["open", "closed", "killed"]},
    "killed_reason": NSTR,
    "seed_sha256": NSTR,
    "revealed_at": NTIME,
    "draws": INT,
    "stock": {"type": "array", "items": _object({"prize_id": STR, "remaining": INT, "initial": INT})},
}


def _request(properties: dict[str, Schema], required: list[str]) -> Schema:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": False}


URL = {"type": "string", "minLength": 1, "maxLength": 2048}
EVENTS: Schema = {
    "description": "event names (customer.created), prefix.* patterns, or * for every event",
    "oneOf": [{"type": "array", "minItems": 1, "items": STR}, {"type": "string", "minLength": 1}],
}
ENDPOINT_FIELDS: dict[str, Schema] = {
    "id": INT,
    "url": STR,
    "events": {"type": "array", "items": STR},
    "enabled": BOOL,
    "ordered": BOOL,
    "created_at": TIME,
    "disabled_at": NTIME,
    "disabled_reason": NSTR,
    "failing_since": NTIME,
    "deliveries": {**COUNTS, "description": "deliveries per state: pending, sending, delivered"},
}
DELIVERY_FIELDS: dict[str, Schema] = {
    "id": INT,
    "webhook_id": {"type": "string", "pattern": "^msg_[0-9]+$"},
    "endpoint_id": INT,
    "event_type": STR,
    "customer_id": _nullable("integer"),
    "state": {"enum": ["pending", "sending", "delivered"]},
    "attempts": INT,
    "created_at": TIME,
    "next_attempt_at": TIME,
    "delivered_at": NTIME,
    "last_status": _nullable("integer"),
    "last_error": NSTR,
    "payload": _object({"type": STR, "timestamp": STR, "data": ANY_OBJECT}),
}
ATTEMPT = _object(
    {
        "attempt": INT,
        "at": TIME,
        "status_code": _nullable("integer"),
        "latency_ms": INT,
        "response_excerpt": NSTR,
        "error": NSTR,
    }
)
IMPORT = _object(
    {
        "id": INT,
        "state": {"enum": ["running", "done", "failed"]},
        "started_at": TIME,
        "finished_at": NTIME,
        "progress": {"type": "array", "items": STR, "description": "the importer's last progress lines"},
        "summary": {**COUNTS, "description": "the import's tally (customers_new, groups_new, linked …)"},
        "error": NSTR,
        "resumable": {"type": "array", "items": STR, "description": "lists an interrupted import resumes"},
    }
)

SCHEMAS: dict[str, Schema] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details (application/problem+json).",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": STR,
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": STR,
            "errors": {"type": "array", "items": _object({"field": STR, "reason": STR})},
        },
        "additionalProperties": False,
    },
    "Customer": _object(CUSTOMER_FIELDS),
    "CustomerPage": _page("Customer"),
    "Touch": _object(TOUCH_FIELDS),
    "Enrolment": _object(
        {
            "drip_id": STR,
            "state": {"enum": ["active", "stopped", "completed"]},
            "stop_reason": NSTR,
            "anchor_at": TIME,
            "ended_at": NTIME,
        }
    ),
    "CustomerProfile": _object(
        {
            **CUSTOMER_FIELDS,
            "identities": _object({"external_userid": NSTR, "openid": NSTR, "unionid": NSTR}),
            "first_touch": {"oneOf": [_ref("Touch"), {"type": "null"}]},
            "touches": {"type": "array", "items": _ref("Touch")},
            "tags": {"type": "array", "items": _object({"tag": STR, "source": STR, "created_at": TIME})},
            "groups": {
                "type": "array",
                "items": _object({"chat_id": STR, "name": NSTR, "active": BOOL, "joined_at": NTIME, "left_at": NTIME}),
            },
            "orders": _object({"count": INT, "total_spent_cents": INT, "last_purchase_at": NTIME}),
            "points_balance": INT,
            "checkins": INT,
            "draws": {
                "type": "array",
                "items": _object({"id": INT, "campaign_id": STR, "prize_id": NSTR, "drawn_at": TIME}),
            },
            "drips": {"type": "array", "items": _ref("Enrolment")},
        }
    ),
    "TimelineItem": _object(
        {
            "at": TIME,
            "kind": {"enum": ["touch", "welcome", "loss", "order", "checkin", "draw", "drip_step"]},
            "id": INT,
            "data": ANY_OBJECT,
        }
    ),
    "TimelinePage": _page("TimelineItem"),
    "TagsRequest": _object({"tags": {"type": "array", "minItems": 1, "maxItems": 20, "items": STR}}),
    "TagsResult": _object(
        {
            "customer_id": INT,
            "tags": {"type": "array", "items": STR},
            "added": {"type": "array", "items": STR},
            "removed": {"type": "array", "items": STR},
        }
    ),
    "Channel": _object({"code": STR, "name": STR, "platform": STR, "tags": {"type": "array", "items": STR}}),
    "ChannelPage": _page("Channel"),
    "ChannelStats": _object(
        {
            "code": STR,
            "adds": INT,
            "unique": INT,
            "losses": INT,
            "net": INT,
            "welcomes": _object({k: INT for k in ("delivered", "expired", "failed", "unknown", "pending", "skipped")}),
            "variants": {"type": "object", "additionalProperties": INT},
            "retention_7d": _nullable("number"),
            "since": NTIME,
            "until": NTIME,
        }
    ),
    "Event": _object(
        {
            "id": INT,
            "platform": STR,
            "kind": STR,
            "status": {"enum": ["pending", "done", "failed"]},
            "attempts": INT,
            "received_at": TIME,
            "finished_at": NTIME,
            "error": NSTR,
        }
    ),
    "EventPage": _page("Event"),
    "Order": {
        "type": "object",
        "description": "The order webhook's payload (docs/webhooks.md#payload).",
        "required": ["type", "data"],
        "properties": {
            "type": {"enum": ["order.paid", "order.refunded"]},
            "data": {
                "type": "object",
                "required": ["order_id", "amount_cents", "currency", "paid_at", "customer"],
                "properties": {
                    "order_id": {"type": "string", "maxLength": 128},
                    "amount_cents": {"type": "integer", "minimum": 0, "maximum": 10**10},
                    "currency": {"const": "CNY"},
                    "paid_at": TIME,
                    "customer": {
                        "type": "object",
                        "properties": {
                            k: {"type": "string", "maxLength": 64} for k in ("unionid", "openid", "external_userid")
                        },
                    },
                },
            },
        },
    },
    "OrderAccepted": _object(
        {"status": {"enum": ["accepted", "duplicate"]}, "order_id": STR, "receipt_id": _nullable("integer")}
    ),
    "Health": _object(
        {
            "status": {"enum": ["ok", "degraded"]},
            "database": STR,
            "tokens": {
                "type": "object",
                "additionalProperties": _object(
                    {"state": {"enum": ["valid", "expired", "missing", "in_redis"]}, "expires_at": NTIME}
                ),
            },
            "outbox": {"type": "object", "additionalProperties": INT},
            "last_errors": _object(
                {
                    "events": {"type": "array", "items": _object({"id": INT, "kind": STR, "error": STR, "at": NTIME})},
                    "platform_calls": {
                        "type": "array",
                        "items": _object({"id": INT, "api": STR, "state": STR, "error": STR, "at": NTIME}),
                    },
                }
            ),
        }
    ),
    "SopStep": _object({"step_id": STR, "due_at": TIME, "state": STR, "reason": NSTR, "finished_at": NTIME}),
    "SopEnrolment": _object(
        {
            "id": INT,
            "customer_id": INT,
            "drip_id": STR,
            "state": {"enum": ["active", "stopped", "completed"]},
            "stop_reason": NSTR,
            "anchor_at": TIME,
            "ended_at": NTIME,
            "steps": {"type": "array", "items": _ref("SopStep")},
        }
    ),
    "SopEnrolmentPage": _page("SopEnrolment"),
    "GroupFire": _object(
        {
            "id": INT,
            "post_id": STR,
            "fire_at": TIME,
            "delivery": STR,
            "state": {"enum": ["firing", "done", "missed"]},
            "reason": NSTR,
            "targets": {
                "type": "array",
                "items": _object(
                    {"target": STR, "state": STR, "reason": NSTR, "groups": INT, "reminders": INT, "updated_at": TIME}
                ),
            },
            "unconfirmed_owners": {"type": "array", "items": STR},
        }
    ),
    "GroupFirePage": _page("GroupFire"),
    "SopPreview": _object(
        {
            "from": TIME,
            "until": TIME,
            "drip_steps_total": INT,
            "limit": INT,
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "due": TIME,
                        "kind": {"enum": ["drip", "post"]},
                        "who": STR,
                        "source": STR,
                        "delivery": STR,
                        "category": STR,
                        "decision": STR,
                        "reason": STR,
                        "until": NTIME,
                        "groups": INT,
                        "sends": INT,
                        "stops": {"type": "array", "items": STR},
                    }
                ),
            },
        }
    ),
    "SopStatus": _object(
        {
            "at": TIME,
            "drips": {
                "type": "array",
                "items": _object({"drip_id": STR, "states": COUNTS, "stop_reasons": COUNTS}),
            },
            "steps": COUNTS,
            "step_reasons": REASONS,
            "latest_steps": {
                "type": "array",
                "items": _object(
                    {"at": TIME, "customer_id": INT, "drip_id": STR, "step_id": STR, "state": STR, "reason": NSTR}
                ),
            },
            "fires": COUNTS,
            "fire_reasons": REASONS,
            "latest_fires": {
                "type": "array",
                "items": _object({"at": TIME, "post_id": STR, "target": STR, "state": STR, "reason": NSTR}),
            },
            "calls": {"type": "array", "items": _object({"api": STR, "state": STR, "count": INT})},
            "latest_calls": {
                "type": "array",
                "items": _object({"at": TIME, "api": STR, "state": STR, "idempotency_key": STR, "error": NSTR}),
            },
            "ledger": COUNTS,
            "ledger_reasons": REASONS,
        }
    ),
    "CheckinStats": _object(
        {
            "since": {"type": "string", "format": "date"},
            "days": {
                "type": "array",
                "items": _object({"day": STR, "checkins": INT, "customers": INT, "points": INT}),
            },
            "total": INT,
            "streaks": COUNTS,
        }
    ),
    "Campaign": _object(CAMPAIGN_FIELDS),
    "CampaignPage": _page("Campaign"),
    "CampaignDetail": _object(
        {
            **CAMPAIGN_FIELDS,
            "winners": _object(
                {
                    "items": {
                        "type": "array",
                        "items": _object(
                            {"draw_id": INT, "seq": INT, "customer_id": INT, "prize_id": STR, "drawn_at": TIME}
                        ),
                    },
                    "next_cursor": NSTR,
                }
            ),
        }
    ),
    "KillRequest": _object({"reason": {"type": "string", "minLength": 1, "maxLength": 500}}),
    "Verification": _object(
        {
            "campaign_id": STR,
            "seed": STR,
            "seed_sha256": STR,
            "draws": INT,
            "winners": COUNTS,
            "mismatches": {"type": "array", "items": STR},
            "ok": BOOL,
        }
    ),
    "AuditEntry": _object(
        {
            "id": INT,
            "key": STR,
            "method": STR,
            "path": STR,
            "resource": STR,
            "at": TIME,
            "before": _nullable("object"),
            "after": _nullable("object"),
        }
    ),
    "AuditPage": _page("AuditEntry"),
    **{
        name: schema
        for name, schema in (
            ("WebhookEndpoint", _object(ENDPOINT_FIELDS)),
            (
                "WebhookEndpointCreated",
                _object({**ENDPOINT_FIELDS, "secret": {"type": "string", "pattern": "^whsec_"}}),
            ),
            ("WebhookEndpointPage", _page("WebhookEndpoint")),
            ("WebhookEndpointRequest", _request({"url": URL, "events": EVENTS, "ordered": BOOL}, ["url", "events"])),
            ("WebhookEndpointChange", _request({"events": EVENTS, "enabled": BOOL, "ordered": BOOL}, [])),
            ("WebhookEndpointRemoved", _object({"id": INT, "deliveries_removed": INT})),
            ("WebhookDelivery", _object(DELIVERY_FIELDS)),
            ("WebhookDeliveryWithLog", _object({**DELIVERY_FIELDS, "log": {"type": "array", "items": ATTEMPT}})),
            ("WebhookDeliveryPage", _page("WebhookDeliveryWithLog")),
            ("Import", IMPORT),
        )
    },
}

# Public names for the schema helpers, for route modules that declare their own components.
nullable, obj, ref = _nullable, _object, _ref
