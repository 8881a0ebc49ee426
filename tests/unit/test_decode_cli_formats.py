"""Issue 20.1 and 20.4: `consumer decode` reads every shape the service reads (Kinesis
destination records, DynamoDB Streams and Lambda records, Kinesis records with KPL
aggregates), says which when a line is none of them, names invalid UTF-8, caps a line's size,
and never ends with a traceback."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumer.cli import decode_cmd, main
from consumer.records import aggregate

EVENTS = Path(__file__).parent.parent / "events"


def event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


DESTINATION = event("kinesis_destination_records.json")[0]
STREAMS = event("dynamodb_streams_get_records.json")["Records"][0]
LAMBDA_EVENT = event("lambda_dynamodb_event.json")
KINESIS_RESPONSE = event("kinesis_get_records_response.json")


def decode(
    tmp_path: Path, lines: list[bytes], capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[int, list[dict[str, Any]], list[str]]:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    status = main(["decode", str(path), *options])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, [json.loads(line) for line in out.splitlines()], err.splitlines()


def test_every_shape_is_detected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aggregated = aggregate([("a", orjson.dumps(DESTINATION)), ("b", orjson.dumps(DESTINATION))])
    kinesis_record = {"SequenceNumber": "1", "Data": base64.b64encode(aggregated).decode()}
    lines = [
        orjson.dumps(DESTINATION),
        orjson.dumps(STREAMS),
        orjson.dumps(LAMBDA_EVENT),
        orjson.dumps(LAMBDA_EVENT["Records"][0]),
        orjson.dumps(KINESIS_RESPONSE),
        orjson.dumps(kinesis_record),
        orjson.dumps({"kinesis": {"data": kinesis_record["Data"]}, "eventSource": "aws:kinesis"}),
    ]
    status, changes, errors = decode(tmp_path, lines, capsys)
    assert (status, errors) == (0, [])
    lambda_count = len(LAMBDA_EVENT["Records"])
    kinesis_count = len(KINESIS_RESPONSE["Records"]) + 1  # its last record aggregates two
    assert len(changes) == 1 + 1 + lambda_count + 1 + kinesis_count + 2 + 2
    assert changes[0]["table"] == "Music"
    assert changes[1]["table"] == "-"  # Streams records do not carry their table
    assert changes[-1]["keys"] == changes[0]["keys"]


@pytest.mark.parametrize(
    ("record_format", "record", "table"),
    [
        ("streams", STREAMS, "orders"),
        ("lambda", LAMBDA_EVENT, None),
        ("destination", DESTINATION, "Music"),
    ],
)
def test_format_can_be_given(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_format: str,
    record: Any,
    table: str | None,
) -> None:
    options = ["--format", record_format, "--table", "orders"]
    status, changes, _ = decode(tmp_path, [orjson.dumps(record)], capsys, *options)
    assert status == 0 and changes
    if table:
        assert changes[0]["table"] == table


def test_the_wrong_format_is_an_error_not_a_guess(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, changes, errors = decode(
        tmp_path, [orjson.dumps(DESTINATION)], capsys, "--format", "kinesis"
    )
    assert (status, changes) == (1, [])
    assert errors == ["line 1: a Kinesis record without base64 Data (or kinesis.data)"]


def test_an_unknown_shape_says_which_formats_are_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, errors = decode(tmp_path, [b'{"hello": "world"}', b"[1, 2]"], capsys)
    assert status == 1 and len(errors) == 2
    for line in errors:
        for shape in ("destination", "streams", "lambda", "kinesis", "KPL", "--format"):
            assert shape in line


def test_invalid_utf8_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = orjson.dumps(DESTINATION).replace(b'"INSERT"', b'"INS\xffERT"')
    status, _, errors = decode(tmp_path, [bad], capsys)
    position = bad.index(b"\xff") + 1
    assert status == 1
    assert errors == [f"line 1: not UTF-8 text (byte {position} of the line is invalid)"]


def test_a_byte_order_mark_is_ignored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20.1: a UTF-8 BOM was an orjson traceback."""
    status, changes, errors = decode(
        tmp_path, [b"\xef\xbb\xbf" + orjson.dumps(DESTINATION)], capsys
    )
    assert (status, errors, len(changes)) == (0, [], 1)


def nested(depth: int) -> bytes:
    inner = '{"S":"x"}'
    for _ in range(depth):
        inner = '{"L":[' + inner + "]}"
    body = dict(DESTINATION["dynamodb"], NewImage={"deep": "PLACEHOLDER"})
    text = orjson.dumps(dict(DESTINATION, dynamodb=body)).decode()
    return text.replace('"PLACEHOLDER"', inner).encode()


@pytest.mark.parametrize("depth", [480, 495, 510])
def test_deep_nesting_is_one_line_and_the_rest_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], depth: int
) -> None:
    """Issue 20.1: L/M nesting of 480-510 levels hit orjson's recursion limit: traceback."""
    status, changes, errors = decode(tmp_path, [nested(depth), orjson.dumps(DESTINATION)], capsys)
    assert status == 1
    assert len(changes) == 1
    (error,) = errors
    assert error.startswith("line 1: ")


def test_a_duplicate_envelope_key_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20.1: a second `dynamodb` key was a KeyError traceback."""
    text = orjson.dumps(DESTINATION).decode()
    duplicate = text[:-1] + ', "dynamodb": {"Keys": {"a": {"S": "x"}}}}'
    status, _, errors = decode(tmp_path, [duplicate.encode(), orjson.dumps(DESTINATION)], capsys)
    assert status == 1
    assert len(errors) == 1 and errors[0].startswith("line 1: ")


def test_a_line_over_the_cap_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    long = b'{"pad": "' + b"x" * 5000 + b'"}'
    lines = [long, orjson.dumps(DESTINATION)]
    status, changes, errors = decode(tmp_path, lines, capsys, "--max-line-bytes", "4096")
    assert status == 1 and len(changes) == 1
    assert errors == [f"line 1: {len(long) + 1} bytes, over --max-line-bytes; skipped"]


def test_bounded_lines_keep_lines_at_the_limit() -> None:
    lines = list(decode_cmd.bounded_lines(io.BytesIO(b"abcd\nabcde\nab"), 4))
    assert lines[0] == b"abcd\n"
    assert isinstance(lines[1], decode_cmd.LineTooLong) and lines[1].length == 6
    assert lines[2] == b"ab"


def test_a_huge_line_does_not_fill_memory(tmp_path: Path) -> None:
    """Issue 20.5: a 100 MB line used 1.2 GB. Now it is skipped in 1 MiB chunks."""
    huge = tmp_path / "huge.jsonl"
    with huge.open("wb") as handle:
        handle.write(b'{"pad": "')
        for _ in range(100):
            handle.write(b"x" * (1024 * 1024))
        handle.write(b'"}\n' + orjson.dumps(DESTINATION) + b"\n")
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark into ru_maxrss across
    # fork and exec, so a child of a large pytest worker reported the worker's size (442 MiB in CI).
    script = (
        "import sys\n"
        "from consumer.cli import main\n"
        "status = main(['decode', sys.argv[1]])\n"
        "lines = open('/proc/self/status').read().splitlines()\n"
        "peak = next(line.split()[1] for line in lines if line.startswith('VmHWM:'))\n"
        "print(peak, file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(huge)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    *messages, peak_kib = done.stderr.splitlines()
    assert messages == [f"line 1: {100 * 1024 * 1024 + 12} bytes, over --max-line-bytes; skipped"]
    assert json.loads(done.stdout)["table"] == "Music"
    # The CLI itself takes ~100-200 MiB (every command module imported); before the fix: 1.2 GB.
    assert int(peak_kib) < 400 * 1024, f"peak RSS {int(peak_kib) // 1024} MiB"


CLI = "import sys; from consumer.cli import main; sys.exit(main())"


def test_a_write_error_is_reported_as_one(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(orjson.dumps(DESTINATION) + b"\n")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-c", CLI, "decode", str(path)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert (
        done.stderr.strip() == "consumer decode: cannot write the output: No space left on device"
    )


def test_decode_lines_directly_still_works() -> None:
    out, err = io.StringIO(), io.StringIO()
    status = decode_cmd.decode_lines([orjson.dumps(DESTINATION)], "test", out, err)
    assert status == 0 and json.loads(out.getvalue())["table"] == "Music"
