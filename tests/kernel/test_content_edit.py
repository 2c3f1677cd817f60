"""Field-by-field edits of a content file: comments and layout survive, wrong types are refused, and the
loader's problems land on the field they are about."""

from __future__ import annotations

import pytest

from bot.content import Problem
from bot.content.edit import EditError, apply_edits, fields, problems_by_field
from bot.content_revisions import check_files, read_directory
from handlers.content import content_registry
from tests.support.settings import SHIPPED_CONTENT

TEXT = """\
# 包裹卡的欢迎语
[[messages]]
id = "welcome"  # referenced by channels.toml

[[messages.variants]]
id = "a"
weight = 50
text = "你好"

[[messages.variants]]
id = "b"
weight = 50
text = \"\"\"第一行
第二行\"\"\"
staff = ["lulu", "axin"]
on = true
"""


def test_fields_are_named_as_the_loader_names_keys() -> None:
    found = {f.key: f for f in fields(TEXT)}
    assert found["messages[0].variants[0].text"].value == "你好"
    assert found["messages[0].variants[1].weight"].kind == "integer"
    assert found["messages[0].variants[1].text"].multiline
    assert found["messages[0].variants[1].staff"].form_value == "lulu\naxin"
    assert found["messages[0].variants[1].on"].kind == "boolean"


def test_edits_keep_comments_and_layout() -> None:
    edited = apply_edits(
        TEXT,
        {
            "messages[0].variants[0].text": "欢迎光临",
            "messages[0].variants[1].weight": "30",
            "messages[0].variants[1].staff": "lulu, axin，xiaomi",
            "messages[0].variants[1].on": "false",
        },
    )
    assert "# 包裹卡的欢迎语" in edited and "# referenced by channels.toml" in edited
    found = {f.key: f.value for f in fields(edited)}
    assert found["messages[0].variants[0].text"] == "欢迎光临"
    assert found["messages[0].variants[1].weight"] == 30
    assert found["messages[0].variants[1].staff"] == ("lulu", "axin", "xiaomi")
    assert found["messages[0].variants[1].on"] is False
    assert apply_edits(TEXT, {"messages[0].variants[1].text": "第一行\r\n第二行"}) == TEXT  # unchanged: same text


@pytest.mark.parametrize(
    ("key", "raw", "reason"),
    [
        ("messages[0].variants[0].weight", "half", "whole number"),
        ("messages[0].variants[1].on", "maybe", "true or false"),
        ("messages[0].nope", "x", "not a key"),
        ("messages[3].id", "x", "not a key"),
        ("messages[0].variants", "x", "not a single value"),
    ],
)
def test_wrong_values_are_refused_and_name_the_field(key: str, raw: str, reason: str) -> None:
    with pytest.raises(EditError) as refused:
        apply_edits(TEXT, {key: raw})
    assert refused.value.key == key and reason in refused.value.reason


def test_a_loader_problem_lands_on_its_field() -> None:
    files = read_directory(SHIPPED_CONTENT)
    text = files["channels.toml"].decode()
    keys = [f.key for f in fields(text)]
    edited = apply_edits(text, {"channels[0].welcome": "no_such_message", "channels[0].tags": "渠道/不存在"})
    content, problems = check_files({**files, "channels.toml": edited.encode()}, content_registry())
    assert content is None
    placed = problems_by_field(problems, "channels.toml", keys)
    assert any("not found" in reason for reason in placed["channels[0].welcome"])
    assert placed["channels[0].tags"]
    assert problems_by_field([Problem("other.toml", "x", "y")], "channels.toml", keys) == {}
