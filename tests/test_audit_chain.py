"""The audit file's hash chain: `toolmesh audit verify` passes an untouched file and names the
first broken line of an edited, removed, reordered or truncated one; export gives the records."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from router.observe.audit import AuditLog, FileSink
from router.observe.audit_chain import GENESIS, verify

pytestmark = pytest.mark.anyio


def audit(path: Path, args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "router", "audit", *args.split(), str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


async def write_records(path: Path, count: int, first: int = 0) -> FileSink:
    sink = FileSink(path)
    log = AuditLog([sink])
    for n in range(first, first + count):
        log.record(
            agent="ops", session="secret-session", method="tools/call", target=f"svc__echo{n}",
            server="svc", instance="svc#1", arguments={"n": n}, outcome="ok", error_code=None,
            seconds=0.001, trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id=f"{n + 1:016x}",
            era="legacy", via="mcp", result={"content": [{"type": "text", "text": str(n)}]},
        )  # fmt: skip
    await log.flush()
    return sink


async def test_an_untouched_file_verifies_and_a_restarted_writer_continues_its_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await write_records(path, 5)
    sink = await write_records(path, 5, first=5)  # a new router on the same file
    lines = path.read_bytes().splitlines()
    assert len(lines) == 10
    first = json.loads(lines[0])
    assert first["prev"] == GENESIS.decode()
    assert first["request_id"] == "0000000000000001" and first["target"] == "svc__echo0"
    result = orjson.dumps({"content": [{"type": "text", "text": "0"}]}, option=orjson.OPT_SORT_KEYS)
    assert first["result_sha256"] == hashlib.sha256(result).hexdigest()
    assert first["arguments_sha256"] == hashlib.sha256(b'{"n":0}').hexdigest()
    assert b"secret-session" not in path.read_bytes()
    assert json.loads(lines[5])["prev"] == json.loads(lines[4])["hash"]
    done = audit(path, "verify")
    assert done.returncode == 0, done.stderr
    assert f"10 records, chain intact, head {sink.head}" in done.stdout
    assert audit(path, f"verify --head {sink.head}").returncode == 0


def tampered(path: Path, lines: list[bytes], name: str) -> Path:
    out = path.with_name(name)
    out.write_bytes(b"".join(line + b"\n" for line in lines))
    return out


async def test_edited_removed_reordered_and_truncated_files_are_caught_at_the_right_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    sink = await write_records(path, 8)
    lines = path.read_bytes().splitlines()

    edited = list(lines)
    edited[4] = edited[4].replace(b'"outcome":"ok"', b'"outcome":"no"')
    done = audit(tampered(path, edited, "edited.jsonl"), "verify")
    assert done.returncode == 1
    assert "edited.jsonl:5: the record was edited" in done.stderr

    # An editor who recomputes the edited line's own hash breaks the link of the next line.
    record = json.loads(edited[4])
    body = edited[4][: -len(',"hash":"') - 66] + b"}"
    rehashed = body[:-1] + b',"hash":"' + hashlib.sha256(body).hexdigest().encode() + b'"}'
    assert json.loads(rehashed)["outcome"] == "no" and record["prev"] == json.loads(lines[3])["hash"]
    edited[4] = rehashed
    done = audit(tampered(path, edited, "rehashed.jsonl"), "verify")
    assert "rehashed.jsonl:6: does not follow the line before it" in done.stderr

    removed = lines[:3] + lines[4:]
    done = audit(tampered(path, removed, "removed.jsonl"), "verify")
    assert "removed.jsonl:4: does not follow the line before it: a record was removed" in done.stderr

    reordered = [*lines[:5], lines[6], lines[5], *lines[7:]]
    assert (
        "reordered.jsonl:6: does not follow"
        in audit(tampered(path, reordered, "reordered.jsonl"), "verify").stderr
    )

    head_removed = lines[2:]
    done = audit(tampered(path, head_removed, "head.jsonl"), "verify")
    assert "head.jsonl:1: the chain does not start here: records before it were removed" in done.stderr

    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(path.read_bytes()[:-40])  # cut mid-record
    assert "cut.jsonl:8: not a whole chained record: the file was cut short" in audit(cut, "verify").stderr

    # Whole records removed from the end: only an anchor kept elsewhere shows it.
    short = tampered(path, lines[:6], "short.jsonl")
    assert audit(short, "verify").returncode == 0
    done = audit(short, f"verify --head {sink.head}")
    assert done.returncode == 1 and "short.jsonl:7: the chain ends at line 6, not at head" in done.stderr

    garbage = tampered(path, [*lines[:2], b'{"not": "chained"}', *lines[3:]], "garbage.jsonl")
    assert "garbage.jsonl:3: not a chained audit record" in audit(garbage, "verify").stderr


async def test_export_gives_the_records_without_chain_fields_and_refuses_a_broken_chain(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    await write_records(path, 3)
    out = tmp_path / "siem.jsonl"
    done = audit(path, f"export --out {out}")
    assert done.returncode == 0, done.stderr
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    originals = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["target"] for r in exported] == ["svc__echo0", "svc__echo1", "svc__echo2"]
    for mine, original in zip(exported, originals, strict=True):
        assert "prev" not in mine and "hash" not in mine
        assert mine == {k: v for k, v in original.items() if k not in {"prev", "hash"}}
    lines = path.read_bytes().splitlines()
    broken = tampered(path, [lines[0], lines[2]], "broken.jsonl")
    assert audit(broken, f"export --out {tmp_path / 'x.jsonl'}").returncode == 1


def test_verify_over_lines_in_memory_reports_counts_and_head() -> None:
    verdict = verify([])
    assert verdict.ok and verdict.records == 0 and verdict.head == GENESIS.decode()
