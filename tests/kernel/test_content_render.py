"""Variant choice (weights, time windows) and rendering to the send_welcome_msg JSON shape."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from bot.content import (
    FileAttachment,
    ImageAttachment,
    LinkAttachment,
    Message,
    MiniprogramAttachment,
    Variant,
    VideoAttachment,
    Window,
    choose_variant,
    local_time_of,
    render,
)
from bot.content.templates import variables_in
from handlers.content import load_content
from tests.support.settings import SHIPPED_CONTENT

FALLBACKS = {"nickname": "朋友", "staff_name": "小鹿", "channel_name": "山野小食"}


def variant(vid: str, weight: int = 1, window: Window | None = None, text: str = "x") -> Variant:
    return Variant("m", vid, weight, window, text, (), variables_in(text))


def test_weights_split_traffic() -> None:
    message = Message("m", None, (variant("a", 1), variant("b", 3)))
    rng = random.Random(20240611)
    counts = Counter(choose_variant(message, rng, time(12, 0)).id for _ in range(40_000))
    assert abs(counts["b"] / 40_000 - 0.75) < 0.01


def test_seeded_choice_is_reproducible() -> None:
    message = Message("m", None, (variant("a", 2), variant("b", 5), variant("c", 3)))
    first = [choose_variant(message, random.Random(7), time(9)).id for _ in range(5)]
    picks_a = [choose_variant(message, rng, time(9)).id for rng in [random.Random(7)] for _ in range(50)]
    picks_b = [choose_variant(message, rng, time(9)).id for rng in [random.Random(7)] for _ in range(50)]
    assert picks_a == picks_b and len(set(first)) == 1 and set(picks_a) == {"a", "b", "c"}


def test_time_windows_pick_the_matching_variant() -> None:
    live = variant("on_air", window=Window(19 * 60, 23 * 60))
    night = variant("night", window=Window(23 * 60, 2 * 60))
    rest = variant("rest")
    message = Message("m", None, (live, night, rest))
    rng = random.Random(1)
    assert choose_variant(message, rng, time(19, 0)).id == "on_air"
    assert choose_variant(message, rng, time(22, 59)).id == "on_air"
    assert choose_variant(message, rng, time(23, 0)).id == "night"
    assert choose_variant(message, rng, time(1, 59)).id == "night"
    assert choose_variant(message, rng, time(2, 0)).id == "rest"
    assert choose_variant(message, rng, time(12, 0)).id == "rest"


def test_ab_inside_a_window() -> None:
    a = variant("a", 1, Window(8 * 60, 12 * 60))
    b = variant("b", 1, Window(8 * 60, 12 * 60))
    message = Message("m", None, (a, b, variant("other", 100)))
    rng = random.Random(3)
    ids = Counter(choose_variant(message, rng, time(10)).id for _ in range(2000))
    assert set(ids) == {"a", "b"} and abs(ids["a"] - 1000) < 150


def test_shipped_store_welcome_follows_opening_hours() -> None:
    content = load_content(SHIPPED_CONTENT)
    message = content.message("welcome_store_sh01")
    assert message is not None
    tz = ZoneInfo("Asia/Shanghai")
    evening = local_time_of(datetime(2024, 6, 11, 14, 30, tzinfo=UTC), tz)  # 22:30 in Shanghai
    assert evening == time(22, 30)
    assert choose_variant(message, random.Random(0), evening).id == "closed"
    assert choose_variant(message, random.Random(0), time(10, 0)).id == "open"


def test_render_fills_variables_and_falls_back() -> None:
    v = variant("a", text="{nickname}你好，我是{staff_name}，来自{channel_name}（{channel}）{{原样}}")
    values = {"nickname": "小明", "staff_name": None, "channel": "pkgcard", "channel_name": "  "}
    rendered = render(v, values, FALLBACKS)
    assert rendered.text == "小明你好，我是小鹿，来自山野小食（pkgcard）{原样}"
    assert rendered.variant_ref == "m/a"
    assert render(v, {}, {}).text == "你好，我是，来自（）{原样}"


def test_nickname_with_braces_is_not_interpreted() -> None:
    rendered = render(variant("a", text="hi {nickname}"), {"nickname": "{staff_name}"}, FALLBACKS)
    assert rendered.text == "hi {staff_name}"


def attach(*attachments: object) -> Variant:
    return Variant("welcome", "a", 1, None, "你好", tuple(attachments), frozenset())  # type: ignore[arg-type]


def test_attachment_json_matches_send_welcome_msg() -> None:
    v = attach(
        ImageAttachment(pic_url="https://e.com/a.jpg"),
        ImageAttachment(media_id="MEDIA_IMG"),
        LinkAttachment("标题", "https://e.com/p", picurl="https://e.com/c.jpg", desc="描述"),
        LinkAttachment("只有标题", "https://e.com/q"),
        MiniprogramAttachment("小程序", "wx8d4c2b1a9e7f6035", "pages/index.html", pic_path="media/c.png"),
        VideoAttachment(media_id="MEDIA_VIDEO"),
        FileAttachment(path="media/menu.pdf"),
    )
    rendered = render(v, {}, FALLBACKS, {"media/c.png": "MEDIA_COVER", "media/menu.pdf": "MEDIA_FILE"})
    assert rendered.welcome_body("CODE") == {
        "welcome_code": "CODE",
        "text": {"content": "你好"},
        "attachments": [
            {"msgtype": "image", "image": {"pic_url": "https://e.com/a.jpg"}},
            {"msgtype": "image", "image": {"media_id": "MEDIA_IMG"}},
            {
                "msgtype": "link",
                "link": {"title": "标题", "picurl": "https://e.com/c.jpg", "desc": "描述", "url": "https://e.com/p"},
            },
            {"msgtype": "link", "link": {"title": "只有标题", "url": "https://e.com/q"}},
            {
                "msgtype": "miniprogram",
                "miniprogram": {
                    "title": "小程序",
                    "pic_media_id": "MEDIA_COVER",
                    "appid": "wx8d4c2b1a9e7f6035",
                    "page": "pages/index.html",
                },
            },
            {"msgtype": "video", "video": {"media_id": "MEDIA_VIDEO"}},
            {"msgtype": "file", "file": {"media_id": "MEDIA_FILE"}},
        ],
    }
    assert rendered.missing_media == ()


def test_unuploaded_media_is_left_out_not_blocking_the_welcome() -> None:
    v = attach(ImageAttachment(path="media/a.png"), LinkAttachment("t", "https://e.com"))
    rendered = render(v, {}, FALLBACKS)
    assert rendered.missing_media == ("media/a.png",)
    assert [a["msgtype"] for a in rendered.attachments] == ["link"]


def test_attachment_only_message_has_no_text_key() -> None:
    v = Variant("m", "a", 1, None, "", (LinkAttachment("t", "https://e.com"),), frozenset())
    assert "text" not in render(v, {}, FALLBACKS).welcome_body("CODE")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shipped_pkgcard_welcome_renders(seed: int) -> None:
    content = load_content(SHIPPED_CONTENT)
    message = content.message("welcome_pkgcard")
    assert message is not None
    chosen = choose_variant(message, random.Random(seed), time(15))
    rendered = render(
        chosen, {"nickname": None, "staff_name": "阿鑫"}, content.fallbacks, {"media/gift_29_cover.png": "M"}
    )
    assert rendered.text.startswith("朋友") and "阿鑫" in rendered.text and "{" not in rendered.text
    assert len(rendered.attachments) == 1 and rendered.missing_media == ()
