"""A log that proves itself: anchors kept outside the database, and every way of tampering named.

The chain alone catches an edit, a deletion and an insertion. A full rewrite (triggers dropped,
every hash after the change recomputed) and a deleted tail leave a chain that is consistent in
itself: only an anchor written before shows them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import register_minor, tick
from rapidresponse import audit
from rapidresponse.anchors import ANCHOR_FILE, read_anchors, write_anchor
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.config import load_settings
from rapidresponse.engine import Context, acknowledge, resolve
from rapidresponse.store import report_copy_of, report_copy_wanted


@pytest.fixture
def anchored(app: App, ctx: Context, clock, transport, settings) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """A resolved case, an anchor written after it, and one more case after the anchor."""
    first = register_minor(ctx, app).ref
    tick(ctx, transport, settings)
    clock.advance(minutes=5)
    acknowledge(ctx, first, "youth_prosecutor")
    resolve(ctx, first, "found")
    tick(ctx, transport, settings)
    folder = app.home.parent / "other-volume"
    write_anchor(app.store, folder, clock.now())
    clock.advance(minutes=1)
    register_minor(ctx, app, indicators=())
    tick(ctx, transport, settings)
    app.close()
    return app.home, folder / ANCHOR_FILE


def raw(home: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(home / "rapidresponse.db", isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    return conn


def verify(home: Path, *extra: str) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    runner = CliRunner()
    text = runner.invoke(cli, ["--home", str(home), "log", "--verify", *extra])
    as_json = runner.invoke(cli, ["--home", str(home), "log", "--verify", "--json", *extra])
    return text.exit_code, text.output, json.loads(as_json.stdout)


def anchored_seq(anchor_file: Path) -> int:
    [anchor] = read_anchors(anchor_file)
    assert anchor.seq is not None
    return anchor.seq


def rewrite_from(conn: sqlite3.Connection, seq: int, **changes: str) -> None:
    """What a forger does: change event `seq`, then recompute every hash from it on."""
    for column, value in changes.items():
        conn.execute(f"UPDATE events SET {column} = ? WHERE seq = ?", [value, seq])
    rehash_from(conn, seq)


def rehash_from(conn: sqlite3.Connection, seq: int) -> None:
    rows = conn.execute(
        "SELECT seq, at, case_ref, actor, kind, detail FROM events WHERE seq >= ? ORDER BY seq", [seq]
    ).fetchall()
    prev = conn.execute("SELECT hash FROM events WHERE seq < ? ORDER BY seq DESC LIMIT 1", [seq]).fetchone()
    prev_hash = prev[0] if prev else audit.GENESIS
    for row in rows:
        digest = hashlib.sha256((prev_hash + audit.canonical_text(*row)).encode()).hexdigest()
        conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", [prev_hash, digest, row[0]])
        prev_hash = digest


def recopy(conn: sqlite3.Connection) -> None:
    """A thorough forger also rewrites the report's copy of the log, so that it matches again."""
    conn.execute("DROP TRIGGER IF EXISTS report_events_no_delete")
    conn.execute("DELETE FROM report_events")
    conn.execute(f"INSERT INTO report_events SELECT {report_copy_of('events')}"
                 f" FROM events WHERE {report_copy_wanted('events')}")


def test_the_untouched_log_matches_its_anchor_file(anchored: tuple[Path, Path]) -> None:
    home, anchors = anchored
    code, output, report = verify(home, "--anchors", str(anchors))
    assert code == 0, output
    assert "intact" in output and "1 anchor(s) match" in output
    assert report["ok"] and report["anchors_checked"] == 1 and report["table_mismatches"] == []


def test_the_fast_hash_is_the_hash_the_log_always_had(anchored: tuple[Path, Path]) -> None:
    """Existing logs still verify: the joined text is byte for byte the canonical JSON."""
    home, _ = anchored
    conn = sqlite3.connect(home / "rapidresponse.db")
    for seq, at, case, actor, kind, detail, prev_hash, digest in conn.execute(
        "SELECT seq, at, case_ref, actor, kind, detail, prev_hash, hash FROM events"
    ):
        event = {"seq": seq, "at": at, "case": case, "actor": actor, "kind": kind,
                 "detail": json.loads(detail)}
        assert audit.event_hash(prev_hash, event) == digest
        assert hashlib.sha256((prev_hash + audit.canonical_text(seq, at, case, actor, kind, detail))
                              .encode()).hexdigest() == digest


def test_an_edit_is_named(anchored: tuple[Path, Path]) -> None:
    home, anchors = anchored
    raw(home).execute("UPDATE events SET actor = 'someone else' WHERE seq = 6")
    code, output, report = verify(home, "--anchors", str(anchors))
    assert code == 1 and "event 6" in output and "does not match its hash" in output
    assert report["bad_event"] == 6


def test_a_deletion_is_named(anchored: tuple[Path, Path]) -> None:
    home, _ = anchored
    raw(home).execute("DELETE FROM events WHERE seq = 7")
    code, output, report = verify(home)
    assert code == 1 and "event 7 is missing" in output and report["bad_event"] == 8


def test_an_insertion_is_named(anchored: tuple[Path, Path]) -> None:
    home, _ = anchored
    conn = raw(home)
    rows = conn.execute("SELECT seq FROM events WHERE seq >= 5 ORDER BY seq DESC").fetchall()
    for (seq,) in rows:  # make room, as a forger inserting an acknowledgement would
        conn.execute("UPDATE events SET seq = seq + 1 WHERE seq = ?", [seq])
    prev_hash = conn.execute("SELECT hash FROM events WHERE seq = 4").fetchone()[0]
    detail = json.dumps({"role": "coordinator", "step": "alert-youth-prosecutor"})
    text = audit.canonical_text(5, "2026-11-28T13:01:00.000Z", "RR-2026-0001", "forger",
                                "step.acknowledged", detail)
    digest = hashlib.sha256((prev_hash + text).encode()).hexdigest()
    conn.execute("INSERT INTO events VALUES (5, '2026-11-28T13:01:00.000Z', 'RR-2026-0001', 'forger',"
                 " 'step.acknowledged', ?, ?, ?)", [detail, prev_hash, digest])
    code, output, _ = verify(home)
    assert code == 1 and "event 6" in output and "does not follow" in output


def test_a_full_rewrite_with_recomputed_hashes_passes_the_chain_but_not_the_anchor(
    anchored: tuple[Path, Path],
) -> None:
    home, anchors = anchored
    conn = raw(home)
    seq = conn.execute("SELECT seq FROM events WHERE kind = 'step.acknowledged'").fetchone()[0]
    rewrite_from(conn, seq, actor="someone else")
    code, output, _ = verify(home)
    assert code == 0, "without an anchor the rewritten chain is consistent in itself"
    code, output, report = verify(home, "--anchors", str(anchors))
    head = anchored_seq(anchors)
    assert code == 1 and report["bad_event"] == head
    assert f"event {head}" in output and "rewritten at or before this event" in output


def test_a_rewrite_is_placed_between_the_anchor_that_holds_and_the_one_that_does_not(
    anchored: tuple[Path, Path], tmp_path: Path
) -> None:
    home, anchors = anchored
    early = audit.Head(3, sqlite3.connect(home / "rapidresponse.db").execute(
        "SELECT hash FROM events WHERE seq = 3").fetchone()[0])
    both = tmp_path / "anchors.txt"
    both.write_text(f"2026-11-28T13:00:00.000Z 3 {early.hash}\n" + anchors.read_text())
    conn = raw(home)
    rewrite_from(conn, 8, actor="someone else")
    code, output, _ = verify(home, "--anchors", str(both))
    assert code == 1 and "after event 3, which matches its anchor" in output


def test_a_deleted_tail_is_caught_by_an_anchor_beyond_the_head(anchored: tuple[Path, Path]) -> None:
    home, anchors = anchored
    head = anchored_seq(anchors)
    conn = raw(home)
    conn.execute("DELETE FROM events WHERE seq >= ?", [head - 1])
    conn.execute("DELETE FROM cases WHERE ref = 'RR-2026-0002'")
    recopy(conn)
    assert verify(home)[0] == 0, "a shorter chain is consistent in itself"
    code, output, report = verify(home, "--anchors", str(anchors))
    assert code == 1 and report["bad_event"] == head - 1 and "newest events were deleted" in output


def test_a_hash_given_alone_must_be_in_the_log(anchored: tuple[Path, Path]) -> None:
    home, anchors = anchored
    [anchor] = read_anchors(anchors)
    assert verify(home, "--anchor", anchor.hash)[0] == 0
    assert verify(home, "--anchor", f"{anchor.seq}:{anchor.hash}")[0] == 0
    rewrite_from(raw(home), 2, actor="someone else")
    code, output, _ = verify(home, "--anchor", anchor.hash)
    assert code == 1 and "no event has the hash" in output


def test_the_cases_table_is_cross_checked_against_the_log(anchored: tuple[Path, Path]) -> None:
    home, _ = anchored
    conn = sqlite3.connect(home / "rapidresponse.db", isolation_level=None)
    conn.execute("UPDATE cases SET state = 'resolved', outcome = 'found' WHERE ref = 'RR-2026-0002'")
    code, output, report = verify(home)
    assert code == 1 and "RR-2026-0002 is resolved in the cases table but open in the log" in output
    conn.execute("UPDATE cases SET state = 'open' WHERE ref = 'RR-2026-0001'")
    report = verify(home)[2]
    assert "RR-2026-0001 is open in the cases table but resolved in the log" in report["table_mismatches"]


def test_a_deleted_resolution_with_recomputed_hashes_is_caught_by_the_cross_check(
    anchored: tuple[Path, Path],
) -> None:
    """The issue's forger: triggers dropped, case.resolved deleted, every hash recomputed."""
    home, _ = anchored
    conn = raw(home)
    seq = conn.execute("SELECT seq FROM events WHERE kind = 'case.resolved'").fetchone()[0]
    conn.execute("DELETE FROM events WHERE seq = ?", [seq])
    for (later,) in conn.execute("SELECT seq FROM events WHERE seq > ? ORDER BY seq", [seq]).fetchall():
        conn.execute("UPDATE events SET seq = seq - 1 WHERE seq = ?", [later])
    rehash_from(conn, seq)
    recopy(conn)
    code, output, _ = verify(home)
    assert code == 1 and "RR-2026-0001 is resolved in the cases table but open in the log" in output


def test_log_anchor_prints_the_head_and_verify_refuses_bad_anchors(anchored: tuple[Path, Path], tmp_path: Path) -> None:
    home, _ = anchored
    runner = CliRunner()
    out = runner.invoke(cli, ["--home", str(home), "log", "--anchor"])
    _at, seq, digest = out.stdout.split()
    conn = sqlite3.connect(home / "rapidresponse.db")
    assert (int(seq), digest) == conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    printed = tmp_path / "mine.txt"
    printed.write_text(out.stdout)
    assert verify(home, "--anchors", str(printed))[0] == 0
    bad = runner.invoke(cli, ["--home", str(home), "log", "--verify", "--anchor", "not-a-hash"])
    assert bad.exit_code == 2 and "--anchor" in bad.stderr
    junk = tmp_path / "junk.txt"
    junk.write_text("hello world\n")
    bad = runner.invoke(cli, ["--home", str(home), "log", "--verify", "--anchors", str(junk)])
    assert bad.exit_code == 2 and "line 1" in bad.stderr
    alone = runner.invoke(cli, ["--home", str(home), "log", "--anchors", str(junk)])
    assert alone.exit_code == 2


def test_the_anchor_file_only_grows_and_is_private(app: App, ctx: Context, clock) -> None:  # type: ignore[no-untyped-def]
    folder = app.home.parent / "anchors"
    first = write_anchor(app.store, folder, clock.now())
    register_minor(ctx, app)
    clock.advance(minutes=1)
    second = write_anchor(app.store, folder, clock.now())
    path = folder / ANCHOR_FILE
    assert path.read_text().splitlines() == [first, second]
    assert (path.stat().st_mode & 0o777) == 0o600
    assert [a.seq for a in read_anchors(path)] == [0, audit.head(app.store).seq]


def test_the_daemon_writes_anchors_where_config_toml_says(app: App, clock, transport) -> None:  # type: ignore[no-untyped-def]
    from rapidresponse.daemon import Daemon

    elsewhere = app.home.parent / "mnt" / "anchors"
    (app.home / "config.toml").write_text(
        f'[audit]\nanchor_seconds = 600\nanchor_folder = "{elsewhere}"\n', encoding="utf-8")
    settings = load_settings(app.home)
    assert settings.anchor_seconds == 600 and settings.anchor_path(app.home) == elsewhere
    lines: list[str] = []

    class Out:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            return None

    daemon = Daemon(home=app.home, store=app.store, settings=settings, transport=transport,
                    clock=clock, out=Out())  # type: ignore[arg-type]
    daemon.anchor()
    clock.advance(minutes=10)
    daemon.anchor()
    assert len(read_anchors(elsewhere / ANCHOR_FILE)) == 2
    assert lines == []  # the daemon's output stays one line per logged event
    not_a_folder = app.home.parent / "a-file"
    not_a_folder.write_text("")
    daemon.settings = dataclasses.replace(settings, anchor_folder=str(not_a_folder))
    daemon.anchor()
    lines = [x for x in lines if not x.startswith("# ")]  # the zone, named before the first line
    assert len(lines) == 1 and "anchor.failed" in lines[0] and "cannot write the anchor file" in lines[0]


@pytest.mark.parametrize("text, fragment", [
    ("[audit]\nanchor_seconds = 5\n", "between 10 and 86400"),
    ("[audit]\nanchor_seconds = 'often'\n", "number of seconds"),
    ("[audit]\nanchor_folder = ''\n", "folder path"),
    ("[audit]\nanchor_place = 'x'\n", "unknown key"),
])
def test_anchor_settings_are_checked(home: Path, text: str, fragment: str) -> None:
    from rapidresponse.errors import InputError

    (home / "config.toml").write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=fragment):
        load_settings(home)


def test_unusual_text_in_the_log_verifies(app: App, clock) -> None:  # type: ignore[no-untyped-def]
    """Quotes, control characters, emoji and line separators hash as the log always hashed them."""
    with app.store.transaction():
        for actor in ('o"fficer\\', "tab\there\nnew", "\x01\x1f\x7f", "é😀\u2028\u2029"):
            audit.append(app.store, at=clock.now(), kind="case.note", actor=actor,
                         detail={"why": actor, "n": 1.5, "none": None})
    assert audit.verify(app.store).ok


def test_the_fast_path_falls_back_to_the_exact_text(app: App, ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """If SQLite ever quoted a string differently, Python's own canonical text decides."""
    register_minor(ctx, app)
    monkeypatch.setattr(audit, "_SQL_CANONICAL", "'not the canonical text'")
    assert audit.verify(app.store).ok
    with app.store.transaction():
        app.store.conn.execute("DROP TRIGGER events_no_update")
        app.store.conn.execute("UPDATE events SET actor = 42 WHERE seq = 2")
    result = audit.verify(app.store)
    assert not result.ok and result.bad_seq == 2


@pytest.mark.parametrize("tamper, seq, words", [
    ("UPDATE events SET actor = 'someone else' WHERE seq = {mid}", "mid", "does not match its hash"),
    ("DELETE FROM events WHERE seq = {mid}", "next", "is missing"),
    ("UPDATE events SET prev_hash = hash WHERE seq = {mid}", "mid", "does not follow"),
])
def test_a_long_log_is_checked_in_slices_and_their_seams(
    anchored: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tamper: str, seq: str, words: str
) -> None:
    """Above PARALLEL_FROM events, processes check slices; a break at a seam is still named."""
    home, anchors = anchored
    monkeypatch.setattr(audit, "PARALLEL_FROM", 1)
    monkeypatch.setattr(audit.os, "cpu_count", lambda: 3)
    total = sqlite3.connect(home / "rapidresponse.db").execute("SELECT MAX(seq) FROM events").fetchone()[0]
    seams = [low for low, _high in audit._slices(total)]
    assert len(seams) == 3
    code, output, _ = verify(home, "--anchors", str(anchors))
    assert code == 0, output
    mid = seams[1]  # the first event of the second slice
    raw(home).execute(tamper.format(mid=mid))
    code, output, report = verify(home)
    assert code == 1 and words in output
    assert report["bad_event"] == {"mid": mid, "next": mid + 1}[seq]
