"""Tests for perfmesh.store.audit: an append-only JSON-lines log on a real temp file."""

import os
import stat

from perfmesh.store.audit import AuditLog


def test_entries_come_back_in_order_one_json_line_each(tmp_path):
    """append() writes one sorted-key JSON line per entry; entries() reads them back in order."""
    log = AuditLog(tmp_path / "audit.log")
    log.append({"event": "command", "id": "c1", "params": {"g": 2}})
    log.append({"id": "c1", "event": "result", "status": "success"})
    log.close()
    assert (tmp_path / "audit.log").read_text() == (
        '{"event": "command", "id": "c1", "params": {"g": 2}}\n'
        '{"event": "result", "id": "c1", "status": "success"}\n')
    assert list(log.entries()) == [{"event": "command", "id": "c1", "params": {"g": 2}},
                                   {"event": "result", "id": "c1", "status": "success"}]


def test_file_is_created_private_with_its_directory(tmp_path):
    """The log and missing parent directories are created; the file is mode 0600."""
    path = tmp_path / "a" / "b" / "audit.log"
    log = AuditLog(path, fsync=False)
    log.append({"x": 1})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    log.close()


def test_reopening_appends_never_rewrites(tmp_path):
    """A second AuditLog on the same file keeps what was there and adds after it."""
    path = tmp_path / "audit.log"
    first = AuditLog(path)
    first.append({"n": 1})
    first.close()
    second = AuditLog(path)
    second.append({"n": 2})
    assert [e["n"] for e in second.entries()] == [1, 2]
    second.close()


def test_torn_last_line_and_junk_lines_are_skipped(tmp_path):
    """A line cut mid-write, a non-object JSON line and garbage are skipped; whole entries survive."""
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    log.append({"n": 1})
    with open(path, "ab") as f:
        f.write(b'[1, 2]\n\xff\xfe not json\n')
    log.append({"n": 2})
    with open(path, "ab") as f:
        f.write(b'{"n": 3, "event": "res')          # crash mid-write
    assert list(log.entries()) == [{"n": 1}, {"n": 2}]
    log.close()


def test_values_json_cannot_encode_are_written_as_text(tmp_path):
    """Non-JSON values (bytes, objects) are stored as their str(), never refused."""
    log = AuditLog(tmp_path / "audit.log")
    log.append({"origin": b"op", "path": tmp_path})
    assert list(log.entries()) == [{"origin": "b'op'", "path": str(tmp_path)}]
    log.close()


def test_entries_of_a_removed_file_is_empty_and_close_is_idempotent(tmp_path):
    """entries() of a log whose file is gone yields nothing; close() twice is fine."""
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    os.unlink(path)
    assert list(log.entries()) == []
    log.close()
    log.close()
    assert log._fd == -1


def test_entries_json_cannot_encode_as_given_are_made_jsonable(tmp_path):
    """Non-text keys, odd types and too-deep nesting are written as text instead of refusing the entry."""
    from perfmesh.store.audit import MAX_DEPTH

    deep = current = {}
    for _ in range(MAX_DEPTH + 2):
        current["d"] = {}
        current = current["d"]
    log = AuditLog(tmp_path / "audit.log")
    log.append({"params": {b"k": 1, 2: [None, True, 1.5, (3, "x"), {1, 2}]}})
    log.append({"deep": deep, b"bytes key": 1})     # the bytes key makes plain json.dumps refuse it
    first, second = log.entries()
    assert first == {"params": {"b'k'": 1, "2": [None, True, 1.5, [3, "x"], "{1, 2}"]}}
    node, depth = second["deep"], 1
    while isinstance(node, dict):
        node, depth = node["d"], depth + 1
    assert node == "<nested too deep>" and depth == MAX_DEPTH
    log.close()
