"""Every SOP content mistake is reported with its file, key and reason (drips, group posts, budget)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.content import Problem
from handlers.content import content_problems
from tests.support.settings import SHIPPED_CONTENT

# Messages only the tests use: too many parts for the minute after a follow, a file, long robot text.
EXTRA_MESSAGES = f"""
[[messages]]
id = "four_parts"
text = "t"
attachments = [
  {{ msgtype = "link", title = "a", url = "https://e.com/a" }},
  {{ msgtype = "link", title = "b", url = "https://e.com/b" }},
  {{ msgtype = "link", title = "c", url = "https://e.com/c" }},
]

[[messages]]
id = "with_file"
text = "t"
attachments = [{{ msgtype = "file", media_id = "MEDIA" }}]

[[messages]]
id = "with_miniprogram"
text = "t"
attachments = [{{ msgtype = "miniprogram", title = "t", appid = "wx8d4c2b1a9e7f6035", page = "p", pic_media_id = "M" }}]

[[messages]]
id = "long_text"
text = "{"好" * 700}"
"""


def problems(tmp_path: Path, **files: str) -> list[Problem]:
    """The shipped content with ``files`` replaced (``group_sop="..."``, ``messages__x`` → messages/x.toml)."""
    root = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, root)
    for name, text in {"messages__test_extra": EXTRA_MESSAGES, **files}.items():
        path = root / (name.replace("__", "/") + ".toml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(content_problems(root))


def test_shipped_content_with_test_messages_is_valid(tmp_path: Path) -> None:
    assert problems(tmp_path) == []


def drip(
    *steps: str,
    trigger: str = '{ on = "followed" }',
    extra: str = "",
    drip_id: str = "d",
) -> str:
    """One drip; each step ``"delay|message|delivery|category"`` (empty parts take the defaults)."""
    out = f'[[drips]]\nid = "{drip_id}"\nname = "测试"\ntrigger = {trigger}\n{extra}\n'
    for spec in steps or ("",):
        parts = [*spec.split("|"), "", "", "", ""][:4]
        delay, message, delivery, category = (
            p or d for p, d in zip(parts, ("0m", "drip_gift_reminder", "mp_custom", "care"), strict=True)
        )
        out += (
            f'[[drips.steps]]\ndelay = "{delay}"\nmessage = "{message}"\n'
            f'delivery = "{delivery}"\ncategory = "{category}"\n'
        )
    return out


def post(extra: str = 'cron = "0 10 * * 1"', **fields: str) -> str:
    base = {
        "id": '"p"',
        "targets": '{ tags = ["群类型/福利群"] }',
        "delivery": '"wecom_task_group"',
        "category": '"marketing"',
        "message": '"group_monday_new"',
    }
    base.update(fields)
    lines = "\n".join(f"{k} = {v}" for k, v in base.items() if v)
    return f"[[group_posts]]\n{lines}\n{extra}\n"


D0, S0, S1, G0 = "drips[0]", "drips[0].steps[0]", "drips[0].steps[1]", "group_posts[0]"
TWO_DRIPS = drip(extra='[drips.then]\nstart = "b"', drip_id="a") + drip(extra='[drips.then]\nstart = "a"', drip_id="b")
TAG_LOOP = drip(extra='[drips.then]\ntags = ["旅程/待召回"]', drip_id="a") + drip(
    trigger='{ on = "tag_added", tag = "旅程/待召回" }', extra='[drips.then]\nstart = "a"', drip_id="b"
)

DRIP_CASES = [
    pytest.param(drip(trigger='{ on = "scanned" }'), f"{D0}.trigger.on", "unknown trigger 'scanned'", id="trigger"),
    pytest.param(drip(trigger="{ }"), f"{D0}.trigger.on", "is required", id="trigger on"),
    pytest.param('[[drips]]\nid = "d"\nname = "n"\n', f"{D0}.trigger", "is required", id="no trigger"),
    pytest.param(drip("0m||sms"), f"{S0}.delivery", "unknown delivery 'sms'", id="delivery"),
    pytest.param(drip("0m||wecom_task_group"), f"{S0}.delivery", "known: mp_custom, wecom_task_single", id="group"),
    pytest.param(drip("0m|||promo"), f"{S0}.category", "unknown category 'promo'", id="category"),
    pytest.param(drip("3 hours"), f"{S0}.delay", "is not a delay like", id="delay syntax"),
    pytest.param(drip("next_day 25:00"), f"{S0}.delay", "invalid time of day", id="delay time"),
    pytest.param(drip("0m|nope"), f"{S0}.message", "message 'nope' not found", id="message"),
    pytest.param(drip("6h", "3h"), f"{S1}.delay", "3h can come before the previous step's 6h", id="order"),
    pytest.param(drip("2d", "day 2 10:00"), f"{S1}.delay", "can come before", id="order by time of day"),
    pytest.param(drip("0m||wecom_task_single"), f"{S0}.delivery", "cannot reach a customer who arrived by followed"),
    pytest.param(
        drip("0m||mp_custom", trigger='{ on = "friend_added" }'),
        f"{S0}.delivery",
        "mp_custom cannot reach a customer who arrived by friend_added",
        id="mp_custom for WeCom",
    ),
    pytest.param(
        drip("0m||wecom_task_single", trigger='{ on = "joined_group" }'), f"{S0}.delivery", "cannot reach", id="group"
    ),
    pytest.param(drip("0m|four_parts"), f"{S0}.delivery", "4 messages in the minute after a follow", id="3 per min"),
    pytest.param(drip("0m|with_file"), f"{S0}.delivery", "a file attachment cannot be sent as an Official Account"),
    pytest.param(drip(trigger='{ on = "followed", channels = ["nope"] }'), f"{D0}.trigger.channels[0]", "not found"),
    pytest.param(
        drip(trigger='{ on = "followed", channels = ["pkgcard"] }'),
        f"{D0}.trigger.channels[0]",
        "channel 'pkgcard' is wecom_friend; followed needs mp",
        id="channel platform",
    ),
    pytest.param(drip(trigger='{ on = "order_paid", channels = ["pkgcard"] }'), f"{D0}.trigger.channels", "only for"),
    pytest.param(drip(trigger='{ on = "tag_added" }'), f"{D0}.trigger.tag", "is required for tag_added", id="tag"),
    pytest.param(
        drip(trigger='{ on = "tag_added", tag = "旅程/没有" }'), f"{D0}.trigger.tag", "unknown tag '旅程/没有'"
    ),
    pytest.param(drip(extra='stop_when = ["bought"]'), f"{D0}.stop_when[0]", "unknown stop condition 'bought'"),
    pytest.param(drip(extra='stop_when = ["tag:旅程/没有"]'), f"{D0}.stop_when[0]", "unknown tag '旅程/没有'"),
    pytest.param(
        drip("0m||wecom_task_single", trigger='{ on = "friend_added" }', extra='stop_when = ["added_wecom_friend"]'),
        f"{D0}.stop_when[0]",
        "always true for a friend_added drip",
        id="stop at once",
    ),
    pytest.param(drip(extra='[drips.then]\ntags = ["旅程"]'), f"{D0}.then.tags[0]", 'must be written as "group/tag"'),
    pytest.param(drip(extra='[drips.then]\nstart = "nope"'), f"{D0}.then.start", "drip 'nope' not found"),
    pytest.param(drip(extra='[drips.then]\nstart = "d"'), f"{D0}.then.start", "circular chain: d → d", id="self"),
    pytest.param(TWO_DRIPS, f"{D0}.then.start", "circular chain: a → b → a", id="cycle"),
    pytest.param(TAG_LOOP, f"{D0}.then.tags", "circular chain: a → b → a", id="cycle through a tag"),
    pytest.param(drip(extra="stop_whn = []"), f"{D0}.stop_whn", "did you mean 'stop_when'", id="unknown key"),
    pytest.param(drip("0m") + drip("3h"), "drips[1].id", "duplicate id 'd'", id="duplicate drip"),
    pytest.param(
        drip().replace('delay = "0m"', 'id = "x"\ndelay = "0m"')
        + '[[drips.steps]]\nid = "x"\ndelay = "1h"\nmessage = "drip_hero_story"\ndelivery = "mp_custom"\n'
        'category = "marketing"\n',
        f"{S1}.id",
        "duplicate step id 'x'",
        id="step id",
    ),
]


@pytest.mark.parametrize(("text", "key", "reason"), DRIP_CASES)
def test_drip_mistakes(tmp_path: Path, text: str, key: str, reason: str) -> None:
    found = problems(tmp_path, drips=text)
    assert [(Path(p.file).name, p.key) for p in found if reason in p.reason][:1] == [("drips.toml", key)], found


GROUP_CASES = [
    pytest.param(post('cron = "0 25 * * *"'), f"{G0}.cron", "hour '25' is not valid (allowed: 0-23)", id="cron hour"),
    pytest.param(post('cron = "0 10 * *"'), f"{G0}.cron", "has 4 fields; cron needs 5", id="cron fields"),
    pytest.param(post('cron = "0 10 * * 8"'), f"{G0}.cron", "day-of-week '8'", id="cron weekday"),
    pytest.param(post('cron = "0 10 1 * 1"'), f"{G0}.cron", "restricts both", id="cron both days"),
    pytest.param(post('cron = "0 10 30 2 *"'), f"{G0}.cron", "never fires", id="cron never"),
    pytest.param(post('cron = "0 10 * * 1"\ndates = ["2026-12-01 10:00"]'), G0, "needs exactly one schedule"),
    pytest.param(post(""), G0, "needs exactly one schedule: cron, dates or after (+ from); got none", id="none"),
    pytest.param(post('dates = ["2026-13-01 10:00"]'), f"{G0}.dates[0]", "month must be in 1..12", id="date"),
    pytest.param(post('dates = ["12/01 10:00"]'), f"{G0}.dates[0]", 'not a date and time like "2026-12-01 10:00"'),
    pytest.param(post('cron = "0 10 * * 1"\nfrom = "group_created"'), f"{G0}.from", "only with after"),
    pytest.param(post('after = "day 3 10:00"'), f"{G0}.from", "is required", id="after without from"),
    pytest.param(post('after = "day 3 10:00"\nfrom = "birthday"'), f"{G0}.from", "unknown anchor 'birthday'"),
    pytest.param(post('after = "day three"\nfrom = "member_joined"'), f"{G0}.after", "is not a delay like"),
    pytest.param(post(targets="{ }"), f"{G0}.targets", "needs at least one of tags, names, owners, chat_ids"),
    pytest.param(post(targets=""), f"{G0}.targets", "is required", id="no targets"),
    pytest.param(post(targets='{ tags = ["群类型/快闪群"] }'), f"{G0}.targets.tags[0]", "unknown tag '群类型/快闪群'"),
    pytest.param(post(targets='{ owner = ["lulu"] }'), f"{G0}.targets.owner", "did you mean 'owners'"),
    pytest.param(post(delivery='"mp_custom"'), f"{G0}.delivery", "unknown delivery 'mp_custom'", id="drip delivery"),
    pytest.param(post(category='"ads"'), f"{G0}.category", "unknown category 'ads'", id="category"),
    pytest.param(post(message='"nope"'), f"{G0}.message", "message 'nope' not found", id="message"),
    pytest.param(post(message='"drip_pkgcard_gift"'), f"{G0}.message", "{nickname}, {staff_name} cannot be filled"),
    pytest.param(
        post(message='"with_miniprogram"', delivery='"group_robot"'),
        f"{G0}.message",
        "a miniprogram attachment cannot be sent by a group robot",
        id="robot attachment",
    ),
    pytest.param(
        post(message='"long_text"', delivery='"group_robot"'),
        f"{G0}.message",
        "a group robot text is at most 2048 bytes",
        id="robot text",
    ),
]


@pytest.mark.parametrize(("text", "key", "reason"), GROUP_CASES)
def test_group_post_mistakes(tmp_path: Path, text: str, key: str, reason: str) -> None:
    found = problems(tmp_path, group_sop=text)
    assert [(Path(p.file).name, p.key) for p in found if reason in p.reason][:1] == [("group_sop.toml", key)], found


def test_long_text_is_fine_for_a_staff_confirmed_task(tmp_path: Path) -> None:
    assert problems(tmp_path, group_sop=post(message='"long_text"')) == []


BUDGET_CASES = [
    pytest.param('quiet_hours = "22-08"', "budget.quiet_hours", 'not a time window like "08:00-12:00"'),
    pytest.param("max_marketing_per_day = 4", "budget.max_marketing_per_day", "4 is more than max_automated_per_day"),
    pytest.param(
        "max_automated_per_day = 20", "budget.max_automated_per_day", "20 is more than max_automated_per_week"
    ),
    pytest.param("max_automated_per_day = 0", "budget.max_automated_per_day", "must be at least 1, got 0"),
    pytest.param('missed_after = "soon"', "budget.missed_after", "is not a delay like"),
    pytest.param('missed_after = "0m"', "budget.missed_after", 'use a duration from "1m" to "1d"'),
    pytest.param('missed_after = "next_day 10:00"', "budget.missed_after", 'use a duration from "1m" to "1d"'),
    pytest.param('group_send_quota = "4_per_month"', "budget.group_send_quota", "unknown quota policy '4_per_month'"),
    pytest.param("quiet_hour = true", "budget.quiet_hour", "did you mean 'quiet_hours'"),
]


@pytest.mark.parametrize(("line", "key", "reason"), BUDGET_CASES)
def test_budget_mistakes(tmp_path: Path, line: str, key: str, reason: str) -> None:
    found = problems(tmp_path, budget=f"[budget]\n{line}\n")
    assert [(Path(p.file).name, p.key, reason in p.reason) for p in found] == [("budget.toml", key, True)], found


def test_budget_may_be_defined_once(tmp_path: Path) -> None:
    found = problems(tmp_path, budget="[budget]\n", budget__more="[budget]\n")
    assert [(p.key, p.reason.startswith("[budget] is already defined in")) for p in found] == [("budget", True)]


def test_all_problems_are_reported_in_one_run(tmp_path: Path) -> None:
    drips = drip("3 hours") + drip("0m|nope", drip_id="e")
    found = problems(tmp_path, drips=drips, group_sop=post('cron = "0 25 * * *"'))
    assert [p.key for p in found] == [f"{S0}.delay", "drips[1].steps[0].message", f"{G0}.cron"]
