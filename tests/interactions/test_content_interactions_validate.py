"""Every interaction content mistake is reported with its file, key and reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.content import Problem
from handlers.content import content_problems
from tests.support.settings import SHIPPED_CONTENT


def problems(tmp_path: Path, files: dict[str, str], csv: dict[str, str] | None = None) -> list[Problem]:
    """The shipped content with ``files`` replaced (``"lottery/unbox"`` → lottery/unbox.toml) and extra CSVs."""
    root = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, root)
    for name, text in {**{f"{k}.toml": v for k, v in files.items()}, **(csv or {})}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(content_problems(root))


def shipped(name: str) -> str:
    return (SHIPPED_CONTENT / f"{name}.toml").read_text(encoding="utf-8")


def edit(name: str, old: str, new: str) -> dict[str, str]:
    text = shipped(name)
    assert old in text, old
    return {name: text.replace(old, new, 1)}


def append(name: str, extra: str) -> dict[str, str]:
    return {name: shipped(name) + "\n" + extra + "\n"}


def keyword(**fields: str) -> dict[str, str]:
    base = {"id": '"k"', "match": '"exact"', "pattern": '"在吗"', "text": '"在的～"'}
    base.update(fields)
    return {"keywords": "[[keywords]]\n" + "\n".join(f"{k} = {v}" for k, v in base.items() if v) + "\n"}


M0, M1 = "checkin.milestones[0]", "checkin.milestones[1]"
C0, K0 = "campaigns[0]", "keywords[0]"
P1, P3 = "campaigns[0].prizes[1]", "campaigns[0].prizes[3]"
NONE_PRIZE = '[[campaigns.prizes]]\nid = "none"\nname = "谢谢参与"\nkind = "none"\nweight = 949'

CASES = [
    # check-in
    pytest.param(edit("checkin", "[checkin.replies]", "[checkin.reply]"), "checkin.replies", "is required"),
    pytest.param(
        edit("checkin", "已连续签到 {streak} 天", "{nickname}"), "checkin.replies.success", "unknown variable"
    ),
    pytest.param(edit("checkin", 'streak_broken = "', 'streak_brokn = "'), "checkin.replies.streak_broken", "required"),
    pytest.param(edit("checkin", "points_per_day = 5", "points_per_day = -1"), "checkin.points_per_day", "at least 0"),
    pytest.param(edit("checkin", "from_streak = 3", "from_streak = 1"), "checkin.streak_bonuses[0].from_streak", "2"),
    pytest.param(edit("checkin", "from_streak = 3", "from_streak = 7"), "checkin.streak_bonuses[1].from_streak", "7"),
    pytest.param(edit("checkin", "streak = 30", "streak = 7"), f"{M1}.streak", "another milestone is at streak 7"),
    pytest.param(
        edit("checkin", 'coupon_pool = "checkin_30d"\ntags = ["互动/连签30天"]\n', ""), M1, "needs a reward", id="none"
    ),
    pytest.param(edit("checkin", 'lottery = "unbox"', 'lottery = "wheel"'), f"{M0}.lottery", "campaign 'wheel' not"),
    pytest.param(edit("checkin", '"checkin_30d"', '"gone"'), f"{M1}.coupon_pool", "coupon pool 'gone' not found"),
    pytest.param(edit("checkin", '"互动/连签7天"', '"互动/连签8天"'), f"{M0}.tags[0]", "unknown tag '互动/连签8天'"),
    pytest.param(edit("checkin", 'text = "🎉', 'txt = "🎉'), f"{M0}.txt", "did you mean 'text'", id="milestone key"),
    # lottery
    pytest.param(
        edit("lottery/unbox", "2026-11-20T10:00:00+08:00", "2026-11-20T10:00:00"), f"{C0}.starts_at", "UTC offset"
    ),
    pytest.param(edit("lottery/unbox", "2026-12-31T23:59:59", "2026-11-01T00:00:00"), f"{C0}.ends_at", "not after"),
    pytest.param(
        edit("lottery/unbox", "starts_at = 2026-11-20T10:00:00+08:00", 'starts_at = "11-20"'),
        f"{C0}.starts_at",
        "must be a date-time",
    ),
    pytest.param(edit("lottery/unbox", NONE_PRIZE, ""), f"{C0}.prizes", 'exactly one prize with kind = "none"'),
    pytest.param(append("lottery/unbox", NONE_PRIZE.replace('"none"', '"none2"', 1)), "campaigns[0].prizes", "found 2"),
    pytest.param(edit("lottery/unbox", 'pool = "unbox_49_20"\n', ""), f"{P1}.pool", "is required for coupon prizes"),
    pytest.param(edit("lottery/unbox", "points = 50", 'pool = "x"'), "campaigns[0].prizes[2].pool", "only for coupon"),
    pytest.param(edit("lottery/unbox", '"unbox_49_20"', '"unbox_old"'), f"{P1}.pool", "coupon pool 'unbox_old' not"),
    pytest.param(edit("lottery/unbox", "stock = 6", "stock = 51"), f"{P1}.stock", "stock 51 (all coupon prizes"),
    pytest.param(edit("lottery/unbox", 'kind = "physical"', 'kind = "car"'), "campaigns[0].prizes[0].kind", "unknown"),
    pytest.param(edit("lottery/unbox", "weight = 949", "weight = 949\nstock = 5"), f"{P3}.stock", "unlimited"),
    pytest.param(edit("lottery/unbox", "stock = 1\n", ""), "campaigns[0].prizes[0].stock", "is required"),
    pytest.param(edit("lottery/unbox", "weight = 1\n", "weight = 0\n"), "campaigns[0].prizes[0].weight", "at least 1"),
    pytest.param(
        {"lottery/unbox": shipped("lottery/unbox").split("[[campaigns.prizes]]")[0] + NONE_PRIZE.replace("949", "0")},
        f"{C0}.prizes",
        "every weight is 0",
        id="only none at 0",
    ),
    pytest.param(edit("lottery/unbox", "per_day = 1", "per_day = 5"), f"{C0}.per_day", "5 is more than total (3)"),
    pytest.param(edit("lottery/unbox", "per_day = 1\ntotal = 3\n", ""), C0, "needs a per-customer limit"),
    pytest.param(
        edit("lottery/unbox", "must_follow_mp = true", 'channels = ["tv"]'), f"{C0}.eligibility.channels[0]", "'tv'"
    ),
    pytest.param(
        edit("lottery/unbox", "must_follow_mp = true", 'tags = ["客户层级/钻石"]'),
        f"{C0}.eligibility.tags[0]",
        "unknown",
    ),
    pytest.param(
        edit("lottery/unbox", "[campaigns.replies]", "[campaigns.replies]\nwin = '{user}'"),
        f"{C0}.replies.win",
        "unknown variable {user}",
    ),
    pytest.param(append("lottery/unbox", shipped("lottery/unbox")), "campaigns[1].id", "duplicate id 'unbox'"),
    # keywords
    pytest.param(keyword(match='"regex"', pattern='"(签到"'), f"{K0}.pattern", "not a valid regular expression"),
    pytest.param(keyword(match='"regex"', pattern='".*"'), f"{K0}.pattern", "matches an empty message"),
    pytest.param(keyword(match='"fuzzy"'), f"{K0}.match", "unknown match kind 'fuzzy'"),
    pytest.param(keyword(platforms='["wecom"]'), f"{K0}.platforms[0]", "unknown platform 'wecom'"),
    pytest.param(keyword(reply='"kw_gift"'), K0, "needs exactly one of reply, text, action (got reply, text)"),
    pytest.param(keyword(text=""), K0, "needs exactly one of reply, text, action (got none)"),
    pytest.param(keyword(text="", action='"dance"'), f"{K0}.action", "unknown action 'dance'"),
    pytest.param(keyword(text="", action='"lottery:wheel"'), f"{K0}.action", "lottery campaign 'wheel' not found"),
    pytest.param(keyword(text="", reply='"nope"'), f"{K0}.reply", "message 'nope' not found"),
    pytest.param(keyword(text='"{nick}"'), f"{K0}.text", "unknown variable {nick}"),
    pytest.param(keyword(hours='"9-21"'), f"{K0}.hours", "not a time window"),
    pytest.param(
        {"keywords": keyword()["keywords"] + keyword(id='"k2"')["keywords"]},
        "keywords[1].pattern",
        "rule 'k' has the same exact pattern, platform and priority: this one never answers",
        id="shadowed",
    ),
    pytest.param(
        {
            **keyword(text="", reply='"file_msg"'),
            "messages/file": (
                '[[messages]]\nid = "file_msg"\ntext = "t"\nattachments = [{ msgtype = "file", media_id = "M" }]\n'
            ),
        },
        f"{K0}.reply",
        "a file attachment cannot be sent in Official Account chat",
        id="mp file",
    ),
    # referral
    pytest.param(edit("referral", '"ref_"', '"pkg"'), "referral.code_prefix", "channel 'pkgcard' ('pkgcard') starts"),
    pytest.param(edit("referral", '"ref_"', '"invite_code_"'), "referral.code_prefix", "use 1-10 letters"),
    pytest.param(edit("referral", '"wecom_friend"', '"wecom_group"'), "referral.code_platform", "unknown"),
    pytest.param(edit("referral", "hold_days = 7", "hold_days = 0"), "referral.hold_days", "at least 1"),
    pytest.param(
        edit("referral", "[referral.inviter_reward]", "[referral.inviter]"), "referral.inviter_reward", "is required"
    ),
    pytest.param(
        edit("referral", "points = 100", 'coupon_pool = "x"'),
        "referral.inviter_reward.coupon_pool",
        "coupon pool 'x' not found",
    ),
    pytest.param(edit("referral", "points = 20", ""), "referral.invitee_reward", "needs a reward"),
]


@pytest.mark.parametrize(("files", "key", "reason"), CASES)
def test_interaction_mistakes(tmp_path: Path, files: dict[str, str], key: str, reason: str) -> None:
    found = problems(tmp_path, files)
    first_file = next(iter(files)) + ".toml"
    hits = [(p.file, p.key) for p in found if reason in p.reason]
    assert hits[:1] == [(str(tmp_path / "content" / first_file), key)], found


def test_the_none_prize_may_weigh_zero(tmp_path: Path) -> None:
    assert problems(tmp_path, edit("lottery/unbox", "weight = 949", "weight = 0")) == []


POOL = '[[coupon_pools]]\nid = "extra"\nname = "测试券"\npath = "{path}"\n'
POOL_CASES = [
    pytest.param("codes/missing.csv", None, "file 'codes/missing.csv' not found", id="missing"),
    pytest.param("../outside.csv", None, "is outside the content directory", id="outside"),
    pytest.param("codes/x.csv", "coupon\nA1\n", "needs a header row with a 'code' column", id="header"),
    pytest.param("codes/x.csv", "code\nA1\nA2\nA1\n", "'codes/x.csv' line 4: code 'A1' repeats line 2", id="dup"),
    pytest.param("codes/x.csv", "code,note\nA1,x\n,y\n", "line 3: empty code", id="empty"),
    pytest.param("codes/x.csv", "code\n", "has no codes", id="no codes"),
]


@pytest.mark.parametrize(("path", "csv", "reason"), POOL_CASES)
def test_coupon_pool_mistakes(tmp_path: Path, path: str, csv: str | None, reason: str) -> None:
    files = {"coupons": shipped("coupons") + "\n" + POOL.format(path=path)}
    found = problems(tmp_path, files, {path: csv} if csv is not None else None)
    assert [(Path(p.file).name, p.key, reason in p.reason) for p in found] == [
        ("coupons.toml", "coupon_pools[2].path", True)
    ], found


def test_a_code_in_two_pools_is_refused(tmp_path: Path) -> None:
    files = {"coupons": shipped("coupons") + "\n" + POOL.format(path="codes/x.csv")}
    code = (SHIPPED_CONTENT / "coupon_codes" / "checkin_30d.csv").read_text(encoding="utf-8").splitlines()[5]
    found = problems(tmp_path, files, {"codes/x.csv": f"\ufeffcode\nNEW-1\n{code}\n"})  # an Excel BOM is fine
    assert [(p.key, p.reason) for p in found] == [
        ("coupon_pools[2].path", f"code {code!r} is also in pool 'checkin_30d': each code is issued once")
    ]


def test_checkin_action_needs_a_checkin_file(tmp_path: Path) -> None:
    root = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, root)
    (root / "checkin.toml").unlink()
    found = content_problems(root)
    assert [(p.key, p.reason) for p in found] == [("keywords[0].action", "no [checkin] is configured (checkin.toml)")]
