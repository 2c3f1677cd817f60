"""Keyword replies in the Official Account chat (text and menu CLICK), shared with 微信客服
(``handlers.interactions.kf``).

The answer is the passive reply (docs/platform.md#passive-replies). An answer that depends on content alone (inline
text or a message, without ``{nickname}``) is a reply planner (bot/reply_plan.py): answered as soon as
the receipt is committed, while the handler only queues the link follow-up. The actions (check-in, a
draw) depend on state: single-transaction database work whose reply waits for that transaction, inside
the reply budget — no platform call runs before the reply. Rules are matched at the event's CreateTime.
A message's link attachment follows as one customer-service message
(docs/platform.md#customer-service-messages: the user's text opens
5 sends / 48 h, a menu click 3 / 1 minute).

Menu clicks (docs/platform.md#menu-events): the button ``key`` names a rule id (``checkin``), or an action (``checkin``,
``lottery:<campaign>``), or else it is matched like a text the user typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import time, timedelta, tzinfo

from bot.content import Content, LinkAttachment, choose_variant, local_time_of, render
from bot.content.templates import fill, variables_in
from bot.context import PRIORITY_REPLY, Context
from bot.db.models import Customer
from bot.dispatcher import Router
from bot.events import Event, MenuClicked, TextReceived
from bot.replies import NewsReply, Reply, TextReply
from bot.reply_plan import Planning, local_time_of_event, rng_for
from handlers.customers.identity import ensure_customer
from handlers.interactions.checkin import check_in
from handlers.interactions.content import interactions_of
from handlers.interactions.content.model import ActionKind, KeywordRule, MatchKind
from handlers.interactions.lottery.draw import draw

router = Router("keywords")

# docs/platform.md#customer-service-messages
MESSAGE_WINDOW = timedelta(hours=48)  # the user wrote: 5 custom messages within 48 h
# docs/platform.md#customer-service-messages
CLICK_WINDOW = timedelta(minutes=1)  # a menu click: 3 custom messages within 1 minute
NICKNAME = "nickname"  # the one message variable that needs the customer row


@dataclass(frozen=True, slots=True)
class Answer:
    """What a rule says: text, and at most one link (a news article in the OA, a line in kf)."""

    text: str
    link: LinkAttachment | None = None


def find_rule(ctx: Context, text: str, platform: str) -> KeywordRule | None:
    """The rule answering ``text`` on ``platform`` ("mp" or "kf") now, in the configured timezone."""
    return interactions_of(ctx.content).keyword_rule_for(text, platform, local_time_of(ctx.now(), ctx.settings.tz))


def rule_for_menu_key(content: Content, key: str, at: time) -> KeywordRule | None:
    """A CLICK key: a rule id, an action written as in ``keywords.toml``, or a text to match."""
    for rule in interactions_of(content).keyword_rules:
        if rule.id == key and "mp" in rule.platforms and (rule.window is None or rule.window.contains(at)):
            return rule
    name, _, campaign = key.partition(":")
    if key == ActionKind.CHECKIN.value or (name == ActionKind.LOTTERY.value and campaign):
        action = ActionKind.CHECKIN if key == ActionKind.CHECKIN.value else ActionKind.LOTTERY
        return KeywordRule(
            f"menu:{key}", MatchKind.EXACT, key, 0, frozenset({"mp"}), None, None, None, action, campaign or None
        )
    return interactions_of(content).keyword_rule_for(key, "mp", at)


def mp_rule(event: TextReceived | MenuClicked, content: Content, tz: tzinfo) -> KeywordRule | None:
    """The rule answering an Official Account text or menu click, at the event's own CreateTime (the
    planner and the handler see the same rule, whenever the handler runs)."""
    at = local_time_of_event(event, tz)
    if isinstance(event, TextReceived):
        return interactions_of(content).keyword_rule_for(event.content, "mp", at)
    return rule_for_menu_key(content, event.key, at)


def plannable(rule: KeywordRule, content: Content) -> bool:
    """True when the answer depends on content alone: no action, no ``{nickname}`` (a database fact)."""
    if rule.action is not None:
        return False
    if rule.text is not None:
        return NICKNAME not in variables_in(rule.text)
    message = content.message(rule.reply) if rule.reply else None
    return message is None or all(NICKNAME not in v.variables for v in message.variants)


def planned_answer(event: Event, rule: KeywordRule, content: Content, tz: tzinfo) -> Answer | None:
    """The answer of a :func:`plannable` rule: pure, the variant seeded by the event (bot/reply_plan.py)."""
    no_profile: dict[str, str | None] = {NICKNAME: None}
    if rule.text is not None:
        return Answer(fill(rule.text, no_profile, content.fallbacks))
    message = content.message(rule.reply) if rule.reply else None
    if message is None:
        return None
    variant = choose_variant(message, rng_for(event), local_time_of_event(event, tz))
    rendered = render(variant, no_profile, content.fallbacks)
    link = next((a for a in variant.attachments if isinstance(a, LinkAttachment)), None)
    return Answer(rendered.text, link)


async def _check_in(ctx: Context, rule: KeywordRule, customer: Customer, source: str) -> Answer | None:
    return Answer((await check_in(ctx, customer.id, source)).text)


async def _draw(ctx: Context, rule: KeywordRule, customer: Customer, source: str) -> Answer | None:
    if not rule.campaign:
        return None
    return Answer((await draw(ctx, customer.id, rule.campaign, source)).text)


# What a rule's ``action`` runs. A new keyword-triggered interaction is one ActionKind value (the content
# model) and one function here; the router, the planner (actions are never planned) and kf need nothing.
KeywordAction = Callable[[Context, KeywordRule, Customer, str], Awaitable[Answer | None]]
ACTIONS: Mapping[ActionKind, KeywordAction] = {ActionKind.CHECKIN: _check_in, ActionKind.LOTTERY: _draw}


async def answer_rule(ctx: Context, rule: KeywordRule, customer: Customer, source: str) -> Answer | None:
    """Run the rule for ``customer``: its action, inline text, or message. ``source``: mp | kf | h5."""
    if rule.action is not None:
        return await ACTIONS[rule.action](ctx, rule, customer, source)
    variables: dict[str, str | None] = {NICKNAME: customer.name}
    if rule.text is not None:
        return Answer(fill(rule.text, variables, ctx.content.fallbacks))
    message = ctx.content.message(rule.reply) if rule.reply else None
    if message is None:
        return None
    variant = choose_variant(message, ctx.rng, local_time_of(ctx.now(), ctx.settings.tz))
    rendered = render(variant, variables, ctx.content.fallbacks)
    link = next((a for a in variant.attachments if isinstance(a, LinkAttachment)), None)
    return Answer(rendered.text, link)


def _news(link: LinkAttachment) -> NewsReply:
    return NewsReply(link.title, link.desc or "", link.url, link.picurl or "")


def reply_of(answer: Answer) -> Reply | None:
    """Text as the passive reply; a link without text is the passive reply itself (one article,
    docs/platform.md#passive-replies)."""
    if not answer.text:
        return _news(answer.link) if answer.link is not None else None
    return TextReply(answer.text)


def passive_reply(ctx: Context, answer: Answer, openid: str, window: timedelta) -> Reply | None:
    """:func:`reply_of`; a link next to text follows as one customer-service news message inside ``window``."""
    if answer.text and answer.link is not None:
        ctx.call_platform(
            "mp", "message/custom/send", _news(answer.link).custom_message(openid), key="keyword-link",
            priority=PRIORITY_REPLY, deadline=ctx.now() + window,
        )  # fmt: skip
    return reply_of(answer)


@router.plans(TextReceived, MenuClicked)
def keyword_as_passive_reply(event: TextReceived | MenuClicked, planning: Planning) -> Reply | None:
    rule = mp_rule(event, planning.content, planning.tz)
    if rule is None or not plannable(rule, planning.content):
        return None
    answer = planned_answer(event, rule, planning.content, planning.tz)
    return reply_of(answer) if answer is not None else None


@router.on(TextReceived, MenuClicked)
async def reply_to_keyword(event: TextReceived | MenuClicked, ctx: Context) -> Reply | None:
    """A planned answer was already the passive reply: queue only its link follow-up. Otherwise (an
    action, a ``{nickname}``) the answer is this transaction's reply, inside the reply budget."""
    rule = mp_rule(event, ctx.content, ctx.settings.tz)
    if rule is None:
        return None
    window = MESSAGE_WINDOW if isinstance(event, TextReceived) else CLICK_WINDOW
    customer = await ensure_customer(ctx, "openid", event.openid)
    if plannable(rule, ctx.content):
        planned = planned_answer(event, rule, ctx.content, ctx.settings.tz)
        if planned is not None:
            passive_reply(ctx, planned, event.openid, window)  # the reply itself went out already
        return None
    answer = await answer_rule(ctx, rule, customer, "mp")
    return passive_reply(ctx, answer, event.openid, window) if answer else None
