"""Keyword replies in the Official Account chat (text and menu CLICK), shared with 微信客服 (``handlers.kf``).

The answer is the passive reply (reference §8.3), so everything here must fit the reply budget: rules
are matched in memory before any database work (a text no rule answers costs nothing), and the actions
(check-in, a draw) are single-transaction database work — no platform call runs before the reply.
A message's link attachment follows as one customer-service message (§8.4: the user's text opens
5 sends / 48 h, a menu click 3 / 1 minute).

Menu clicks (§8.6): the button ``key`` names a rule id (``checkin``), or an action (``checkin``,
``lottery:<campaign>``), or else it is matched like a text the user typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.content import LinkAttachment, choose_variant, local_time_of, render
from bot.content.interactions_model import ActionKind, KeywordRule, MatchKind
from bot.content.templates import fill
from bot.context import PRIORITY_REPLY, Context
from bot.db.models import Customer
from bot.dispatcher import Router
from bot.events import MenuClicked, TextReceived
from bot.replies import NewsReply, Reply, TextReply
from handlers.checkin import check_in
from handlers.identity import ensure_customer
from handlers.lottery import draw

router = Router("keywords")

MESSAGE_WINDOW = timedelta(hours=48)  # the user wrote: 5 custom messages within 48 h (§8.4)
CLICK_WINDOW = timedelta(minutes=1)  # a menu click: 3 custom messages within 1 minute (§8.4)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a rule says: text, and at most one link (a news article in the OA, a line in kf)."""

    text: str
    link: LinkAttachment | None = None


def find_rule(ctx: Context, text: str, platform: str) -> KeywordRule | None:
    """The rule answering ``text`` on ``platform`` ("mp" or "kf") now, in the configured timezone."""
    return ctx.content.keyword_rule_for(text, platform, local_time_of(ctx.now(), ctx.settings.tz))


def rule_for_menu_key(ctx: Context, key: str) -> KeywordRule | None:
    """A CLICK key: a rule id, an action written as in ``keywords.toml``, or a text to match."""
    at = local_time_of(ctx.now(), ctx.settings.tz)
    for rule in ctx.content.keyword_rules:
        if rule.id == key and "mp" in rule.platforms and (rule.window is None or rule.window.contains(at)):
            return rule
    name, _, campaign = key.partition(":")
    if key == ActionKind.CHECKIN.value or (name == ActionKind.LOTTERY.value and campaign):
        action = ActionKind.CHECKIN if key == ActionKind.CHECKIN.value else ActionKind.LOTTERY
        return KeywordRule(
            f"menu:{key}", MatchKind.EXACT, key, 0, frozenset({"mp"}), None, None, None, action, campaign or None
        )
    return find_rule(ctx, key, "mp")


async def answer_rule(ctx: Context, rule: KeywordRule, customer: Customer, source: str) -> Answer | None:
    """Run the rule for ``customer``: its action, inline text, or message. ``source``: mp | kf | h5."""
    if rule.action is ActionKind.CHECKIN:
        checked = await check_in(ctx, customer.id, source)
        return Answer(checked.text)
    if rule.action is ActionKind.LOTTERY and rule.campaign:
        drawn = await draw(ctx, customer.id, rule.campaign, source)
        return Answer(drawn.text)
    variables: dict[str, str | None] = {"nickname": customer.name}
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


def passive_reply(ctx: Context, answer: Answer, openid: str, window: timedelta) -> Reply | None:
    """Text as the passive reply; a link follows as one customer-service news message inside ``window``.
    A link without text is the passive reply itself (one article, §8.3)."""
    if not answer.text:
        return _news(answer.link) if answer.link is not None else None
    if answer.link is not None:
        ctx.call_platform(
            "mp", "message/custom/send", _news(answer.link).custom_message(openid), key="keyword-link",
            priority=PRIORITY_REPLY, deadline=ctx.now() + window,
        )  # fmt: skip
    return TextReply(answer.text)


@router.on(TextReceived)
async def reply_to_keyword(event: TextReceived, ctx: Context) -> Reply | None:
    rule = find_rule(ctx, event.content, "mp")
    if rule is None:
        return None
    customer = await ensure_customer(ctx, "openid", event.openid)
    answer = await answer_rule(ctx, rule, customer, "mp")
    return passive_reply(ctx, answer, event.openid, MESSAGE_WINDOW) if answer else None


@router.on(MenuClicked)
async def reply_to_menu_click(event: MenuClicked, ctx: Context) -> Reply | None:
    rule = rule_for_menu_key(ctx, event.key)
    if rule is None:
        return None
    customer = await ensure_customer(ctx, "openid", event.openid)
    answer = await answer_rule(ctx, rule, customer, "mp")
    return passive_reply(ctx, answer, event.openid, CLICK_WINDOW) if answer else None
