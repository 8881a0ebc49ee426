"""`consumer search QUERY`: the local index from the command line."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

import consumer.cli
from consumer.cli import search_cmd
from consumer.pipeline.search.local_index import LocalSearchIndex
from consumer.pipeline.search.settings import LocalIndexSettings
from tests.change_factory import change, remove

BIG = "12345678901234567890123456789012345678"


@pytest.fixture
async def orders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory whose default local index holds three orders (one deleted)."""
    monkeypatch.chdir(tmp_path)
    index = LocalSearchIndex()  # the default: .local-search/changes.sqlite3
    await index.write(
        [
            change("INSERT", "o1", 1_000, new={"status": {"S": "shipped"}, "total": {"N": BIG}}),
            change("INSERT", "o2", 1_000, new={"status": {"S": "pending"}, "city": {"S": "Oslo"}}),
            change("INSERT", "o3", 1_000, new={"status": {"S": "shipped"}, "city": {"S": "Rome"}}),
            remove("o3", 2_000),
        ]
    )
    await index.aclose()
    return tmp_path / ".local-search" / "changes.sqlite3"


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="consumer")
    search_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status


@pytest.mark.usefixtures("orders")
def test_prints_one_line_per_live_hit(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["search", "shipped"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1  # o3 was deleted
    doc_id, score, summary = lines[0].split("\t")
    assert doc_id == "o1" and float(score) >= 0  # BM25: near 0 in a tiny index
    assert summary == f"status=shipped total={BIG}"


@pytest.mark.usefixtures("orders")
def test_json_lines_carry_the_document_with_exact_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["search", "shipped OR pending", "--json", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    hits = [json.loads(line) for line in out.splitlines()]
    assert sorted(hit["id"] for hit in hits) == ["o1", "o2"]
    assert all(set(hit) == {"id", "score", "version", "document"} for hit in hits)
    assert f'"total":{BIG}' in out
    assert all(hit["document"]["deleted"] is False for hit in hits)


@pytest.mark.usefixtures("orders")
def test_limit_caps_the_hits(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["search", "shipped OR pending", "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_index_by_path_or_name(orders: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["search", "oslo", "--index", str(orders)]) == 0
    assert capsys.readouterr().out.startswith("o2\t")
    assert run(["search", "oslo", "--index", "changes"]) == 0
    assert capsys.readouterr().out.startswith("o2\t")


@pytest.mark.usefixtures("orders")
def test_no_match_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["search", "nothing"]) == 0
    assert capsys.readouterr().out == ""


def test_a_missing_index_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(["search", "x", "--index", "orders"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no local index at .local-search/orders.sqlite3" in err


@pytest.mark.usefixtures("orders")
def test_a_malformed_query_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["search", '"unbalanced']) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("consumer search: bad query")


def test_limit_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["search", "x", "--limit", "0"])
    assert "must be between 1 and 10000" in capsys.readouterr().err


def test_summaries_are_clipped(tmp_path: Path) -> None:
    settings = LocalIndexSettings(directory=tmp_path)
    assert settings.file.parent == tmp_path
    long = {f"a{i}": {"S": "word " * 30} for i in range(5)}
    event = change("INSERT", "k", 1_000, new=long)

    async def hit_summary() -> str:
        index = LocalSearchIndex(settings)
        try:
            await index.write([event])
            (hit,) = await index.search("word")
            return search_cmd.summary(hit)
        finally:
            await index.aclose()

    import asyncio

    text = asyncio.run(hit_summary())
    assert len(text) == search_cmd.SUMMARY_WIDTH and text.endswith("…")


@pytest.mark.usefixtures("orders")
def test_the_consumer_command_line_runs_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert consumer.cli.main(["search", "oslo"]) == 0
    assert capsys.readouterr().out.startswith("o2\t")


# --- issue 20: bad --index values, query syntax, terminal control characters ---------------


@pytest.mark.parametrize("content", [b"not a database\n", b""])
def test_a_file_that_is_not_an_index_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    """Issue 20.1: sqlite3.DatabaseError used to be a traceback."""
    bogus = tmp_path / "bogus.sqlite3"
    bogus.write_bytes(content)
    assert run(["search", "x", "--index", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a search index" in err


def test_an_sqlite_file_of_something_else_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    assert run(["search", "x", "--index", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a search index" in err


@pytest.mark.parametrize("name", ["Orders", "bad*name", "_hidden", "a\x1b[2Jb"])
def test_an_invalid_index_name_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(["search", "x", "--index", name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--index" in err and "\x1b" not in err


@pytest.mark.usefixtures("orders")
def test_a_malformed_query_explains_the_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["search", "shipped AND"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert '"a phrase", prefix*, a OR b, a NOT b' in err


CONTROL = "\x1b]0;pwned\x07\x1b[2J\u202e\x9b"
CONTROL_CHARACTERS = "\x1b\x07\u202e\x9b"


def test_control_characters_in_items_are_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20.5: an item value holding ESC sequences reached the operator's terminal raw."""
    monkeypatch.chdir(tmp_path)

    async def write() -> None:
        index = LocalSearchIndex()
        try:
            await index.write(
                [change("INSERT", f"k{CONTROL}", 1_000, new={"note": {"S": f"hello {CONTROL}"}})]
            )
        finally:
            await index.aclose()

    import asyncio

    asyncio.run(write())
    for argv in (["search", "hello"], ["search", "hello", "--json"]):
        assert run(argv) == 0
        out = capsys.readouterr().out
        assert out.count("\n") == 1
        assert not any(character in out for character in CONTROL_CHARACTERS), repr(out)
    assert run(["search", "hello", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["document"]["item"]["note"] == f"hello {CONTROL}"
    assert run(["search", "hello"]) == 0
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\u202e\\x9b" in capsys.readouterr().out
