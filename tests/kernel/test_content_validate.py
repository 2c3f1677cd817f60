"""Every kind of content mistake is reported with its file, key and reason, all in one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.content import ContentError, Problem
from handlers.content import content_problems, load_content
from tests.support.settings import SHIPPED_CONTENT

TAGS = """
[[tag_groups]]
name = "渠道"
tags = ["包裹卡", "自然添加", "公众号海报"]
"""

CHANNELS = """
[[channels]]
code = "pkgcard"
name = "包裹卡"
platform = "wecom_friend"
staff = ["lulu"]
tags = ["渠道/包裹卡"]
welcome = "hello"

[[channels]]
code = "organic"
name = "自然添加"
platform = "wecom_friend"
staff = ["lulu"]
default = true
"""

MESSAGES = """
[fallbacks]
nickname = "朋友"
staff_name = "小鹿"

[[messages]]
id = "hello"
text = "{nickname}你好，我是{staff_name}"
"""

MP_CHANNEL = """
[[channels]]
code = "poster"
name = "海报"
platform = "mp"
tags = ["渠道/公众号海报"]
"""


def write_content(root: Path, **files: str) -> Path:
    """Write the valid baseline; ``name=text`` replaces a file (``channels__x`` → ``channels/x.toml``)."""
    for name, text in {"channels": CHANNELS, "messages": MESSAGES, "tags": TAGS, **files}.items():
        path = root / (name.replace("__", "/") + ".toml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def problems(root: Path, **files: str) -> list[Problem]:
    return list(content_problems(write_content(root, **files)))


def channel(extra: str, *, platform: str = "wecom_friend", code: str = "extra") -> str:
    """The baseline channels plus one more, with ``extra`` TOML lines."""
    staff = 'staff = ["lulu"]\n' if platform == "wecom_friend" and "staff" not in extra else ""
    head = f'\n[[channels]]\ncode = "{code}"\nname = "额外"\nplatform = "{platform}"\n{staff}'
    return CHANNELS + head + extra + "\n"


def message(body: str) -> str:
    return MESSAGES + '\n[[messages]]\nid = "extra"\n' + body + "\n"


def test_baseline_is_valid(tmp_path: Path) -> None:
    assert problems(tmp_path) == []


def ch(extra: str, *, platform: str = "wecom_friend", code: str = "extra") -> dict[str, str]:
    return {"channels": channel(extra, platform=platform, code=code)}


def ms(body: str) -> dict[str, str]:
    return {"messages": message(body)}


def variants(*specs: str) -> dict[str, str]:
    """``"a|08:00-12:00"`` → a variant with id a and those hours; ``"a"`` → no hours."""
    blocks = []
    for spec in specs:
        vid, _, hours = spec.partition("|")
        extra = f'hours = "{hours}"\n' if hours else ""
        blocks.append(f'[[messages.variants]]\nid = "{vid}"\n{extra}text = "x"\n')
    return ms("".join(blocks))


def weight(value: str) -> dict[str, str]:
    return ms(f'[[messages.variants]]\nid = "a"\nweight = {value}\ntext = "x"')


def att(**fields: str) -> dict[str, str]:
    inline = ", ".join(f'{k} = "{v}"' for k, v in fields.items())
    return ms(f"attachments = [{{ {inline} }}]")


LINK = '[[messages.attachments]]\nmsgtype = "link"\ntitle = "t"\nurl = "https://e.com"\n'
APPID = "wx8d4c2b1a9e7f6035"
C2, M1, A0, V0, V1 = (
    "channels[2]",
    "messages[1]",
    "messages[1].attachments[0]",
    "messages[1].variants[0]",
    ("messages[1].variants[1]"),
)
NO_DEFAULT = CHANNELS.replace("default = true", "")
SIX_CHATS = "chat_ids = [" + ", ".join(f'"wr{i}"' for i in range(6)) + "]"
WECOM_ONLY_TAGS = TAGS.replace('tags = ["包裹卡"', 'platforms = ["wecom"]\ntags = ["包裹卡"')
SAME_MP_TAG = TAGS + '[[tag_groups]]\nname = "兴趣"\ntags = ["包裹卡"]\n'

CASES = [
    pytest.param(ch('staf = ["x"]'), "channels", f"{C2}.staf", "did you mean 'staff'", id="unknown key"),
    pytest.param(ch("welcome = 3"), "channels", f"{C2}.welcome", "must be a string, got integer", id="type"),
    pytest.param(ch('staff = "a"'), "channels", f"{C2}.staff", "must be an array of strings", id="array"),
    pytest.param(ch(f'state = "{"s" * 31}"'), "channels", f"{C2}.state", "longer than 30 characters (31)", id="state"),
    pytest.param(ch("", code="c" * 31), "channels", f"{C2}.code", "used as state, longer than 30", id="code state"),
    pytest.param(
        ch(f'scene_str = "{"q" * 65}"', platform="mp"), "channels", f"{C2}.scene_str", "longer than 64 characters (65)"
    ),
    pytest.param(ch('state = "x"', platform="mp"), "channels", f"{C2}.state", "mp channels use scene_str"),
    pytest.param(ch('staff = ["a"]', platform="mp"), "channels", f"{C2}.staff", "only for wecom_friend channels"),
    pytest.param(ch("", platform="weibo"), "channels", f"{C2}.platform", "unknown platform 'weibo'"),
    pytest.param(
        {"channels": CHANNELS + '[[channels]]\ncode = "x"\nplatform = "mp"\n'}, "channels", f"{C2}.name", "is required"
    ),
    pytest.param(ch('state = "o"', code="pkgcard"), "channels", f"{C2}.code", "duplicate code 'pkgcard'"),
    pytest.param(ch('state = "pkgcard"'), "channels", f"{C2}.state", "duplicate state 'pkgcard'"),
    pytest.param(ch(SIX_CHATS, platform="wecom_group"), "channels", f"{C2}.chat_ids", "has 6 items, at most 5"),
    pytest.param(ch("", platform="wecom_group"), "channels", f"{C2}.chat_ids", "is required"),
    pytest.param(ch('backup_staff = ["b"]'), "channels", f"{C2}.backup_staff", "needs daily_limit"),
    pytest.param(ch('[channels.schedule]\nmonday = ["a"]'), "channels", f"{C2}.schedule.monday", "mean 'mon'"),
    pytest.param(ch('welcome = "nope"'), "channels", f"{C2}.welcome", "message 'nope' not found"),
    pytest.param(ch('tags = ["渠道/直播"]'), "channels", f"{C2}.tags[0]", "unknown tag '渠道/直播'"),
    pytest.param(ch('tags = ["包裹卡"]'), "channels", f"{C2}.tags[0]", 'written as "group/tag"'),
    pytest.param({"channels": NO_DEFAULT}, "channels", "channels", "no channel has default = true"),
    pytest.param(ch("default = true"), "channels", f"{C2}.default", "a second default wecom_friend channel"),
    pytest.param(
        {"messages": MESSAGES + '[[messages]]\nid = "hello"\ntext = "x"\n'}, "messages", f"{M1}.id", "duplicate id"
    ),
    pytest.param(ms('text = "hi {nick}"'), "messages", f"{M1}.text", "unknown variable {nick}"),
    pytest.param(ms('text = "hi {nickname:>9}"'), "messages", f"{M1}.text", "format specs are not supported"),
    pytest.param(ms('text = "hi {nickname"'), "messages", f"{M1}.text", "write {{ and }} for literal braces"),
    pytest.param(ms(""), "messages", M1, "needs text or at least one attachment"),
    pytest.param(ms('text = "x"\n' + LINK * 10), "messages", f"{M1}.attachments", "10 attachments, at most 9"),
    pytest.param(att(msgtype="voice", media_id="m"), "messages", f"{A0}.msgtype", "unknown msgtype 'voice'"),
    pytest.param(att(msgtype="link", title="t"), "messages", f"{A0}.url", "is required"),
    pytest.param(att(msgtype="link", title="t", url="ftp://x"), "messages", f"{A0}.url", "http(s) URL"),
    pytest.param(
        att(msgtype="image", media_id="m", pic_url="https://e.com/a.jpg"),
        "messages",
        A0,
        "exactly one of media_id, pic_url, path (got 2)",
    ),
    pytest.param(
        att(msgtype="miniprogram", title="t", appid="x", page="p", pic_media_id="m"), "messages", f"{A0}.appid", "wx"
    ),
    pytest.param(
        att(msgtype="miniprogram", title="t", appid=APPID, page="p"), "messages", A0, "exactly one of pic_media_id"
    ),
    pytest.param(att(msgtype="image", path="media/nope.png"), "messages", f"{A0}.path", "not found"),
    pytest.param(att(msgtype="file", path="../../etc/passwd"), "messages", f"{A0}.path", "outside the content"),
    pytest.param(weight("0"), "messages", f"{V0}.weight", "must be at least 1, got 0"),
    pytest.param(weight("-2"), "messages", f"{V0}.weight", "must be at least 1, got -2"),
    pytest.param(weight("0.5"), "messages", f"{V0}.weight", "must be an integer, got float"),
    pytest.param(variants("a", "a"), "messages", f"{V1}.id", "duplicate variant id 'a'"),
    pytest.param(variants("a|25:00-26:00"), "messages", f"{V0}.hours", "invalid time"),
    pytest.param(variants("a|8点到12点"), "messages", f"{V0}.hours", "not a time window"),
    pytest.param(variants("a|08:00-08:00"), "messages", f"{V0}.hours", "is empty"),
    pytest.param(
        variants("a|08:00-12:00", "b|11:00-14:00", "c"),
        "messages",
        f"{V1}.hours",
        "11:00-14:00 overlaps 08:00-12:00 of variant 'a'",
        id="overlap",
    ),
    pytest.param(
        variants("a|22:00-02:00", "b|01:00-09:00", "c"),
        "messages",
        f"{V1}.hours",
        "overlaps 22:00-02:00",
        id="midnight",
    ),
    pytest.param(
        variants("a|08:00-12:00"), "messages", f"{M1}.variants", "hours leave 00:00-08:00, 12:00-24:00 uncovered"
    ),
    pytest.param(
        ms('text = "x"\n[[messages.variants]]\nid = "a"\ntext = "y"'), "messages", f"{M1}.text", "move it into each"
    ),
    pytest.param(
        {"messages": MESSAGES.replace('nickname = "朋友"\n', "")},
        "messages",
        "messages[0]",
        "uses {nickname} but [fallbacks] has no text",
    ),
    pytest.param(
        {"messages": MESSAGES.replace("[fallbacks]", '[fallbacks]\nnick = "x"')},
        "messages",
        "fallbacks.nick",
        "unknown",
    ),
    pytest.param({"messages": "[[message]]\nid = 'x'\n" + MESSAGES}, "messages", "message", "did you mean 'messages'"),
    pytest.param(
        {"tags": TAGS.replace("自然添加", "长" * 31)}, "tags", "tag_groups[0].tags[1]", "longer than 30 characters (31)"
    ),
    pytest.param({"tags": TAGS + TAGS}, "tags", "tag_groups[1].name", "duplicate name '渠道'"),
    pytest.param({"tags": TAGS.replace('"公众号海报"', '"包裹卡"')}, "tags", "tag_groups[0].tags[2]", "listed twice"),
    pytest.param({"tags": SAME_MP_TAG}, "tags", "tag_groups[1].tags[0]", "Official Account tags have no groups"),
    pytest.param(
        {"tags": WECOM_ONLY_TAGS, "channels": CHANNELS + MP_CHANNEL},
        "channels",
        "channels[2].tags[0]",
        "not synced to the Official Account",
    ),
]


@pytest.mark.parametrize(("files", "file", "key", "reason"), CASES)
def test_mistake_is_reported_with_file_key_and_reason(
    tmp_path: Path, files: dict[str, str], file: str, key: str, reason: str
) -> None:
    found = problems(tmp_path, **files)
    expected_file = str(tmp_path / f"{file}.toml")
    matching = [p for p in found if p.file == expected_file and p.key == key and reason in p.reason]
    assert matching, f"expected {expected_file}:{key}: …{reason}…, got:\n" + "\n".join(map(str, found))


def test_bad_toml_reports_the_line(tmp_path: Path) -> None:
    found = problems(tmp_path, channels=CHANNELS + "\n[[channels]\ncode = 'x'\n")
    bad_line = len(CHANNELS.splitlines()) + 2
    assert [(p.key, p.reason.startswith("not valid TOML")) for p in found] == [(f"line {bad_line}", True)]


def test_every_problem_in_one_run(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        channels=channel('state = "' + "s" * 31 + '"\ncolour = 1').replace('"hello"', '"nope"'),
        messages=message('text = "{nick}"'),
        tags=TAGS + '[[tag_groups]]\nname = "a/b"\ntags = ["x"]\n',
    )
    keys = {(Path(p.file).name, p.key) for p in found}
    assert {
        ("channels.toml", "channels[2].state"),
        ("channels.toml", "channels[0].welcome"),
        ("channels.toml", "channels[2].colour"),
        ("messages.toml", "messages[1].text"),
        ("tags.toml", "tag_groups[1].name"),
    } <= keys


def test_reference_to_a_broken_item_is_not_reported_twice(tmp_path: Path) -> None:
    broken = MESSAGES.replace('text = "{nickname}', 'text = "{nick}')
    found = problems(tmp_path, messages=broken)
    assert [p.key for p in found] == ["messages[0].text"]


def test_problem_format_and_error(tmp_path: Path) -> None:
    write_content(tmp_path, channels=channel('state = "' + "s" * 31 + '"'))
    with pytest.raises(ContentError) as info:
        load_content(tmp_path)
    (problem,) = info.value.problems
    assert str(problem) == f"{tmp_path / 'channels.toml'}:channels[2].state: longer than 30 characters (31)"
    assert str(problem) in str(info.value)


def test_group_welcome_must_fit_a_template(tmp_path: Path) -> None:
    variants = '[[messages.variants]]\nid = "a"\ntext = "x"\n[[messages.variants]]\nid = "b"\ntext = "y"'
    found = problems(
        tmp_path,
        channels=channel('chat_ids = ["wr1"]\nwelcome = "extra"', platform="wecom_group"),
        messages=message(variants),
    )
    assert [(p.key, "no variants" in p.reason) for p in found] == [("channels[2].welcome", True)]


def test_group_welcome_only_uses_nickname(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        channels=channel('chat_ids = ["wr1"]\nwelcome = "hello"', platform="wecom_group"),
    )
    assert [p.reason for p in found] == ["'hello': a group welcome template can only use {nickname}"]


def test_unknown_file_is_reported(tmp_path: Path) -> None:
    found = problems(tmp_path, channel="[[channels]]\n")
    assert [(Path(p.file).name, "unknown content file" in p.reason) for p in found] == [("channel.toml", True)]


def test_files_per_kind_in_a_directory_share_one_namespace(tmp_path: Path) -> None:
    extra = '[[channels]]\ncode = "pkgcard"\nname = "重复"\nplatform = "wecom_friend"\nstaff = ["a"]\nstate = "x"\n'
    found = problems(tmp_path, channels__live=extra)
    assert [(Path(p.file).parts[-2:], p.key) for p in found] == [(("channels", "live.toml"), "channels[0].code")]
    assert "first in" in found[0].reason and "channels.toml channels[0]" in found[0].reason


def test_fallbacks_defined_twice(tmp_path: Path) -> None:
    found = problems(tmp_path, messages__more='[fallbacks]\nnickname = "亲"\n')
    assert [(p.key, "already defined" in p.reason) for p in found] == [("fallbacks", True)]


def test_missing_directory(tmp_path: Path) -> None:
    found = content_problems(tmp_path / "nope")
    assert [p.reason for p in found] == ["content directory not found"]


def test_a_group_welcome_longer_than_a_template_allows_is_refused(tmp_path: Path) -> None:
    """group_welcome_template text.content is at most 3000 bytes
    (docs/platform.md#group-welcome-templates); 1001 CJK chars = 3003."""
    import re
    import shutil

    root = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, root)
    messages = root / "messages.toml"
    text = messages.read_text(encoding="utf-8")
    start = text.index('id = "welcome_group_fans"')
    old = re.search(r'text = """.*?"""|text = ".*?"', text[start:], re.DOTALL)
    assert old is not None
    patched = text[:start] + text[start:].replace(old.group(0), f'text = "{"欢" * 1001}"', 1)
    messages.write_text(patched, encoding="utf-8")
    problems = [str(p) for p in content_problems(root)]
    assert any("at most 3000 bytes (got 3003)" in p for p in problems), problems
