"""Anchors: the log's head written where the database is not, so a rewrite of the whole chain shows.

Someone holding the database file can drop the triggers, change an event and recompute every
hash after it: the chain is then consistent in itself. What they cannot change is a head that
was copied elsewhere before. The daemon appends one line per interval to an append-only file
(its folder configurable, so it can live on another volume or a mount only root can write) and
to the system log (syslog/journald) where there is one; `log --verify --anchors FILE` checks
the chain against each line.

A line is `AT SEQ HASH`: the UTC time it was written, the newest event's sequence number and
its hash. The line holds no data of any case.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from rapidresponse.audit import Anchor, Head, head, parse_anchor
from rapidresponse.errors import InputError, OperationalFailure
from rapidresponse.store import Store
from rapidresponse.timeutil import to_iso

ANCHOR_FILE = "anchors.txt"


def anchor_line(at: datetime, current: Head) -> str:
    return f"{to_iso(at)} {current.seq} {current.hash}"


def write_anchor(store: Store, folder: Path, at: datetime) -> str:
    """Append the head to the anchor file (created 0600) and to syslog; returns the line.

    The file is opened for appending only, one write per line, so an anchor is never half
    written over another. Syslog failures are ignored: it is a second copy, not the first.
    """
    line = anchor_line(at, head(store))
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(folder / ANCHOR_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OperationalFailure(f"cannot write the anchor file in {folder}: {exc.strerror}") from None
    to_syslog(line)
    return line


def to_syslog(line: str) -> None:
    """The anchor in the system log (journald reads syslog too), quietly skipped where absent."""
    try:
        import syslog

        syslog.openlog("rapidresponse", syslog.LOG_PID, syslog.LOG_AUTH)
        syslog.syslog(syslog.LOG_NOTICE, f"audit anchor {line}")
    except Exception:
        return


def read_anchors(path: Path) -> list[Anchor]:
    """Every anchor line of a file; blank lines and `#` comments are skipped.

    Lines copied from syslog (`... audit anchor AT SEQ HASH`) are accepted too: only the last
    three words count.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the anchor file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"the anchor file {path} is not text") from None
    anchors = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            anchors.append(parse_anchor(" ".join(line.split()[-3:]), f"{path.name} line {number}"))
        except ValueError as exc:
            raise InputError(f"{path} line {number}: {exc}") from None
    return anchors
