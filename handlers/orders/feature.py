"""Orders: the shop's signed webhook in, each order recorded once, the purchase facts kept."""

from __future__ import annotations

from bot.feature import Feature
from handlers.orders import purchases
from handlers.orders.webhook import add_webhook_routes, stored_order_event

ORDERS = Feature(
    "orders",
    routers=(purchases.router,),
    routes=(add_webhook_routes,),
    sources={"shop": stored_order_event},
)
