"""Orders from the shop: link the buyer, record the order once, keep the purchase facts (RFM inputs).

The order row is the idempotence key: ``INSERT … ON CONFLICT (order_id) DO NOTHING``, and the customer's
``purchase_count`` / ``total_spent_cents`` / ``last_purchase_at`` move only when a row was really
inserted (paid) or really flipped ``paid → refunded`` (refund), with SQL increments so concurrent orders
of one customer on PostgreSQL never lose an update. A refund that arrives before its order is recorded
as a refunded order, so the late ``order.paid`` counts nothing. A newly recorded paid order is announced
as :class:`~handlers.orders.events.OrderRecorded` (the drip engine stops and starts drips on it). The total
saturates at ``MAX_TOTAL_SPENT_CENTS`` and an amount beyond
``MAX_ORDER_CENTS`` fails the receipt, so no order can overflow the ``bigint`` total.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, case, func, literal, select, update

from bot.context import Context
from bot.db.models import Customer
from bot.db.types import UTCDateTime
from bot.db.upsert import insert_ignore
from bot.dispatcher import Router
from bot.events import OrderPaid, OrderRefunded
from handlers.customers.identity import ensure_customer, find_customer, link_unionid
from handlers.orders.events import OrderRecorded
from handlers.orders.payload import MAX_ORDER_CENTS, MAX_TOTAL_SPENT_CENTS
from handlers.orders.tables import Order

router = Router("orders")

_ORDERS: Table = Order.__table__  # type: ignore[assignment]
_CUSTOMERS: Table = Customer.__table__  # type: ignore[assignment]


@router.on(OrderPaid)
async def record_purchase(event: OrderPaid, ctx: Context) -> None:
    _check_amount(event)
    customer = await find_buyer(ctx, event)
    paid_at = datetime.fromtimestamp(event.create_time, UTC)
    if not await insert_ignore(ctx.session, Order, _order_row(ctx, event, customer.id, "paid"), ["order_id"]):
        return  # already recorded (paid, or refunded before this arrived)
    last = _CUSTOMERS.c.last_purchase_at
    at = literal(paid_at, UTCDateTime())
    await _move_facts(
        ctx,
        customer.id,
        count=1,
        cents=event.amount_cents,
        last_purchase_at=case((last.is_(None) | (last < at), at), else_=last),
    )
    await ctx.emit(OrderRecorded(customer.id, event.order_id, event.amount_cents, paid_at))


@router.on(OrderRefunded)
async def record_refund(event: OrderRefunded, ctx: Context) -> None:
    _check_amount(event)
    row = await _mark_refunded(ctx, event.order_id)
    if row is None and await ctx.session.scalar(select(Order.id).where(Order.order_id == event.order_id)) is None:
        customer = await find_buyer(ctx, event)
        if await insert_ignore(ctx.session, Order, _order_row(ctx, event, customer.id, "refunded"), ["order_id"]):
            return  # refunded before we heard of the payment: the late order.paid will count nothing
        row = await _mark_refunded(ctx, event.order_id)  # its order.paid committed meanwhile
    if row is None or row[0] is None:
        return  # already refunded, or the buyer's record was deleted
    latest_paid = (
        select(func.max(_ORDERS.c.paid_at))
        .where(_ORDERS.c.customer_id == row[0], _ORDERS.c.status == "paid")
        .scalar_subquery()
    )
    await _move_facts(ctx, row[0], count=-1, cents=-row[1], last_purchase_at=latest_paid)


def _check_amount(event: OrderPaid | OrderRefunded) -> None:
    """The webhook refuses such amounts with a 400; an event from anywhere else fails its receipt instead."""
    if not 0 <= event.amount_cents <= MAX_ORDER_CENTS:
        raise ValueError(f"order {event.order_id!r}: amount_cents outside 0..{MAX_ORDER_CENTS}")


async def find_buyer(ctx: Context, event: OrderPaid | OrderRefunded) -> Customer:
    """The buyer by unionid, else openid, else external_userid; created with every id given if new.

    A ``unionid`` in the order links (and if need be merges) the rows of the other ids, as WeChat's would.
    """
    ids = {"unionid": event.unionid, "openid": event.openid, "external_userid": event.external_userid}
    customer: Customer | None = None
    for column, value in ids.items():
        if value and (customer := await find_customer(ctx, column, value)) is not None:
            break
    if customer is None:
        column = next(c for c in ("openid", "external_userid", "unionid") if ids[c])
        customer = await ensure_customer(ctx, column, str(ids[column]))
    if event.unionid:
        customer = await link_unionid(ctx, customer, event.unionid)
    for column in ("openid", "external_userid"):
        value = ids[column]
        if not value or getattr(customer, column) == value:
            continue
        other = await find_customer(ctx, column, value)
        if other is None and getattr(customer, column) is None:
            setattr(customer, column, value)
            customer.updated_at = ctx.now()
        elif other is not None and event.unionid and other.unionid is None:
            customer = await link_unionid(ctx, other, event.unionid)  # the unionid says: one person, merge
    return customer


def _order_row(ctx: Context, event: OrderPaid | OrderRefunded, customer_id: int, status: str) -> dict[str, Any]:
    return {
        "order_id": event.order_id,
        "customer_id": customer_id,
        "status": status,
        "amount_cents": event.amount_cents,
        "currency": event.currency,
        "paid_at": datetime.fromtimestamp(event.create_time, UTC),
        "received_at": ctx.now(),
        "payload": event.raw,
    }


async def _mark_refunded(ctx: Context, order_id: str) -> tuple[int | None, int] | None:
    """Flip a paid order to refunded (once): its (customer_id, amount_cents), or None if it was not paid."""
    result = await ctx.session.execute(
        update(_ORDERS)
        .where(_ORDERS.c.order_id == order_id, _ORDERS.c.status == "paid")
        .values(status="refunded")
        .returning(_ORDERS.c.customer_id, _ORDERS.c.amount_cents)
    )
    row = result.first()
    return None if row is None else (row[0], int(row[1]))


async def _move_facts(
    ctx: Context, customer_id: int, *, count: int, cents: int, last_purchase_at: ColumnElement[Any]
) -> None:
    """Add to the purchase facts in SQL (no lost update), then reload them into the session's object."""
    await ctx.session.flush()  # pending identity changes first: the reload below must not drop them
    total = _CUSTOMERS.c.total_spent_cents
    # saturate, comparing before adding: even a total past the cap (written before it existed) cannot overflow
    capped = case((total >= MAX_TOTAL_SPENT_CENTS - cents, MAX_TOTAL_SPENT_CENTS), else_=total + cents)
    await ctx.session.execute(
        update(_CUSTOMERS)
        .where(_CUSTOMERS.c.id == customer_id)
        .values(
            purchase_count=_CUSTOMERS.c.purchase_count + count,
            total_spent_cents=capped,
            last_purchase_at=last_purchase_at,
            updated_at=ctx.now(),
        )
    )
    await ctx.session.get(Customer, customer_id, populate_existing=True)
