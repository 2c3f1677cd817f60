"""Issue 11, the first hour: commands that read the database on a fresh install, paths relative to the
config file, one line instead of a traceback when PostgreSQL is not migrated."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.config import load_settings
from handlers import main
from tests.support.settings import PG_URL

ROOT = Path(__file__).resolve().parents[2]
READERS = [
    ["stats", "channels"],
    ["events"],
    ["sop", "status"],
    ["lottery", "status"],
    ["content", "sync", "--dry-run"],
]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh install: the example config and content in ``site/``, the shell somewhere else."""
    for name in list(os.environ):
        if name.startswith("SIYU_"):
            monkeypatch.delenv(name)
    # `content sync` installs log handlers on captured streams; keep them to this test
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(ROOT / "config.example.toml", site / "config.toml")
    shutil.copytree(ROOT / "content", site / "content")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return site


@pytest.mark.parametrize("command", READERS, ids=lambda c: " ".join(c))
def test_a_reading_command_on_a_fresh_sqlite_install_migrates_it(
    site: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-c", str(site / "config.toml"), *command])
    out = capsys.readouterr()
    assert code == 0, out
    assert "Traceback" not in out.err and "platform_objects" not in out.err + out.out
    assert (site / "var" / "siyu.db").exists()  # next to the config file, not in the working directory
    assert not Path("var").exists()


def test_relative_paths_in_the_config_file_are_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "etc" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text('content_dir = "ops/content"\n[database]\nurl = "sqlite+aiosqlite:///data/bot.db?timeout=5"\n')
    monkeypatch.chdir(tmp_path)
    s = load_settings(cfg, env={})
    assert s.content_dir == str(tmp_path / "etc" / "ops" / "content")
    assert s.database.url.get() == f"sqlite+aiosqlite:///{tmp_path}/etc/data/bot.db?timeout=5"
    # the defaults too, when the file leaves them out
    cfg.write_text("")
    s = load_settings(cfg, env={})
    assert (s.content_dir, s.database.url.get()) == (
        str(tmp_path / "etc" / "content"),
        f"sqlite+aiosqlite:///{tmp_path}/etc/var/siyu.db",
    )


def test_absolute_paths_memory_and_environment_overrides_are_kept(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('content_dir = "/srv/content"\n[database]\nurl = "sqlite+aiosqlite:////srv/siyu.db"\n')
    s = load_settings(cfg, env={})
    assert (s.content_dir, s.database.url.get()) == ("/srv/content", "sqlite+aiosqlite:////srv/siyu.db")
    cfg.write_text('[database]\nurl = "sqlite+aiosqlite:///:memory:"\n')
    assert load_settings(cfg, env={}).database.url.get() == "sqlite+aiosqlite:///:memory:"
    env = {"SIYU_CONTENT_DIR": "here/content", "SIYU_DATABASE_URL": "sqlite+aiosqlite:///here.db"}
    s = load_settings(cfg, env=env)  # typed in a shell: relative to where it was typed
    assert (s.content_dir, s.database.url.get()) == ("here/content", "sqlite+aiosqlite:///here.db")
    assert load_settings(None, env={}).content_dir == "content"  # no file: the working directory


@pytest.mark.postgres
def test_an_unmigrated_postgres_database_gets_one_line(
    site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if not PG_URL:
        pytest.skip("needs SIYU_TEST_DATABASE_URL")
    name = "test_h9_unmigrated" if PG_URL.endswith("/test_h9") else PG_URL.rpartition("/")[2] + "_unmigrated"
    url = f"{PG_URL.rpartition('/')[0]}/{name}"

    async def recreate(create: bool) -> None:
        engine = create_async_engine(PG_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            if create:
                await conn.execute(text(f"CREATE DATABASE {name}"))
        await engine.dispose()

    asyncio.run(recreate(True))
    monkeypatch.setenv("SIYU_DATABASE_URL", url)
    try:
        for command in READERS:
            assert main(["-c", str(site / "config.toml"), *command]) == 2
            err = capsys.readouterr().err
            assert err == "error: the database is not migrated: run siyu-bot migrate\n", command
    finally:
        asyncio.run(recreate(False))
