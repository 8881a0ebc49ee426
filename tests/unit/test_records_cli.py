"""`consumer decode [FILE|-]`: one JSON line per change, exact numbers, errors by line."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumer.cli import decode_cmd, main

EVENTS = Path(__file__).parent.parent / "events"
DOC_RECORDS: list[dict[str, Any]] = json.loads(
    (EVENTS / "kinesis_destination_records.json").read_text()
)
ALL_TYPES: dict[str, Any] = json.loads((EVENTS / "kinesis_destination_all_types.json").read_text())


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def run(argv: list[str]) -> int:
    """The command through the real CLI entry point."""
    return main(["decode", *argv])


def test_decodes_the_documentation_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_lines(tmp_path / "records.jsonl", [orjson.dumps(r) for r in DOC_RECORDS])
    assert run([str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    documents = [json.loads(line) for line in out.splitlines()]
    assert [d["event_id"] for d in documents] == [r["eventID"] for r in DOC_RECORDS]
    insert, modify, remove, ttl = documents
    assert insert == {
        "event_id": "a5d6b5e0-5b52-4b1f-8b4d-6d1c3c5f9a01",
        "event_name": "INSERT",
        "table": "Music",
        "keys": {"Artist": "No One You Know", "SongTitle": "Call Me Today"},
        "new_image": {
            "AlbumTitle": "Somewhat Famous",
            "Artist": "No One You Know",
            "Awards": 1,
            "SongTitle": "Call Me Today",
        },
        "old_image": None,
        "created_at": "2020-11-23T18:31:23.612000Z",
        "ttl_delete": False,
    }
    assert list(insert) == [
        "event_id",
        "event_name",
        "table",
        "keys",
        "new_image",
        "old_image",
        "created_at",
        "ttl_delete",
    ]
    assert modify["created_at"] == "2024-07-03T22:41:26.486729Z"
    assert modify["old_image"]["Awards"] == 1
    assert remove["new_image"] is None
    assert ttl["ttl_delete"] is True


def test_numbers_keep_dynamodbs_digits_and_binary_is_base64(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_lines(tmp_path / "all.jsonl", [orjson.dumps(ALL_TYPES)])
    assert run([str(path)]) == 0
    line = capsys.readouterr().out.strip()
    for literal in [
        '"price":1.50',
        '"tiny":1E-130',
        '"huge":9.9999999999999999999999999999999999999E+125',
        '"negative":-0.0001',
        '"precise":12345678901234567890123456789012345678',
        '"scores":[1,2.5,-3E+10]',
        '"blob":"AAEC/w=="',
        '"emptyBlob":""',
        '"blobs":["AQ==","AgM="]',
        '"tags":["red","green",""]',
        '"nothing":null',
        '"name":"Grüße, 世界 🌍"',
    ]:
        assert literal in line
    assert json.loads(line)["keys"] == {"pk": "device#42", "sk": 1720046486}


def test_bad_lines_are_reported_by_number_and_the_rest_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_image = dict(DOC_RECORDS[0])
    bad_image["dynamodb"] = dict(bad_image["dynamodb"], NewImage={"Awards": {"N": "many"}})
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [
            orjson.dumps(DOC_RECORDS[0]),
            b"this is not json",
            b"",
            b'{"eventName":"INSERT"}',
            orjson.dumps(bad_image),
            orjson.dumps(DOC_RECORDS[1]) + b"\r",
        ],
    )
    assert run([str(path)]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2
    errors = err.splitlines()
    assert [e.split(":")[0] for e in errors] == ["line 2", "line 4", "line 5"]
    assert "not JSON" in errors[0]
    assert "NewImage['Awards']" in errors[2]


def test_reads_stdin_by_default_and_with_a_dash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in ([], ["-"]):
        stdin = io.TextIOWrapper(io.BytesIO(orjson.dumps(DOC_RECORDS[2]) + b"\n"))
        monkeypatch.setattr("sys.stdin", stdin)
        assert run(argv) == 0
        assert json.loads(capsys.readouterr().out)["event_name"] == "REMOVE"


def test_a_missing_file_is_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_register_adds_the_decode_command() -> None:
    parser = argparse.ArgumentParser()
    decode_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["decode", "records.jsonl"])
    assert args.file == "records.jsonl"
    assert args.handler is decode_cmd.run


def test_decode_lines_directly() -> None:
    out, err = io.StringIO(), io.StringIO()
    status = decode_cmd.decode_lines([orjson.dumps(DOC_RECORDS[0]), b"{}"], "test", out, err)
    assert status == 1
    assert json.loads(out.getvalue())["table"] == "Music"
    assert err.getvalue().startswith("line 2: ")
