"""The review pages: one self-contained HTML file per case and for the report.

Parsed, not string-matched: the chart is an inline SVG with a lane per role and a mark for each
alert, delivery problem, acknowledgement, escalation and exhausted chain; every timeline event is
a table row; nothing loads from a network; nothing identifies the minor. Where Debian's
`chromium` is installed, a real browser opens the page too.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import START, assert_no_secrets, build_two_cases
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.engine import Context
from rapidresponse.timeline import timeline


class Page(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]

    def classes(self, tag: str) -> list[str]:
        return [a.get("class") or "" for t, a in self.tags if t == tag]


@pytest.fixture
def cases(app: App, ctx: Context, clock: Any, transport: Any, settings: Any) -> tuple[str, str]:
    return build_two_cases(app, ctx, clock, transport, settings)


def export(app: App, ref: str, tmp_path: Path) -> tuple[str, Page]:
    app.close()
    target = tmp_path / f"{ref}.html"
    result = CliRunner().invoke(cli, ["--home", str(app.home), "export", ref, "--html", str(target)])
    assert result.exit_code == 0, result.output
    html = target.read_text(encoding="utf-8")
    return html, Page(html)


def assert_self_contained(html: str, page: Page) -> None:
    assert not page.find("script") and not page.find("link") and not page.find("img")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html and "url(" not in html and "@import" not in html
    assert page.find("style") and "size: A4" in html


def test_the_case_page_has_the_chart_and_every_event(app: App, cases: tuple[str, str], tmp_path: Path) -> None:
    ref = cases[1]
    story = timeline(app.store, ref)
    html, page = export(app, ref, tmp_path)
    assert page.find("svg", id="timeline-chart")
    lanes = {a["data-role"] for a in page.find("g", **{"class": "lane"})}
    assert lanes == {"youth_prosecutor", "child_focus", "police", "coordinator"}
    shapes = {c.split()[1] for c in page.classes("g") if c.startswith("mark ")}
    assert {"alert", "failed", "ack", "escalation", "exhausted"} <= shapes
    rows = [a["data-seq"] for a in page.find("tr") if "data-seq" in a]
    assert rows == [str(e.seq) for e in story.entries]
    assert_self_contained(html, page)
    assert_no_secrets(html)


def test_the_case_is_named_by_its_number_like_everywhere(app: App, cases: tuple[str, str], tmp_path: Path) -> None:
    import time_machine

    ref = cases[1]
    app.close()
    target = tmp_path / "page.html"
    with time_machine.travel(START, tick=False):  # the number means this year's case
        result = CliRunner().invoke(cli, ["--home", str(app.home), "export", ref.rsplit("-", 1)[1].lstrip("0"),
                                          "--html", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{ref} written") and ref in target.read_text(encoding="utf-8")


@pytest.mark.parametrize("where", ["missing/page.html", "."])
def test_a_page_that_cannot_be_written_is_refused_before_anything(app: App, cases: tuple[str, str],
                                                                   tmp_path: Path, where: str) -> None:
    app.close()
    target = tmp_path / where
    for command in (["export", cases[0]], ["report"]):
        result = CliRunner().invoke(cli, ["--home", str(app.home), *command, "--html", str(target)])
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and "--html" in result.stderr and str(tmp_path) not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_the_case_page_escapes_what_people_typed(app: App, ctx: Context, clock: Any, transport: Any,
                                                 settings: Any, tmp_path: Path) -> None:
    from conftest import REVIEW_PLAYBOOK, register_minor, use_playbook_text

    sly = app.context(actor='<script>alert("x")</script>')
    ref = register_minor(sly, app, playbook=use_playbook_text(app, "review", REVIEW_PLAYBOOK)).ref
    html, page = export(app, ref, tmp_path)
    assert "<script>" not in html and "&lt;script&gt;" in html and not page.find("script")


def test_the_report_page(app: App, cases: tuple[str, str], tmp_path: Path) -> None:
    app.close()
    target = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["--home", str(app.home), "report", "--since", "2026-11-01",
                                      "--until", "2026-12-01", "--html", str(target)])
    assert result.exit_code == 0, result.output
    html = target.read_text(encoding="utf-8")
    page = Page(html)
    for table in ("cases", "roles", "contacts", "followups", "policy"):
        assert page.find("table", id=table), table
    assert {a["data-role"] for a in page.find("tr") if "data-role" in a} >= {"coordinator", "child_focus"}
    assert "RR-2026" not in html  # figures only, no case references
    assert_self_contained(html, page)
    assert_no_secrets(html)
    both = CliRunner().invoke(cli, ["--home", str(app.home), "report", "--json", "--html", str(target)])
    assert both.exit_code == 2


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium)")
def test_a_real_browser_renders_the_case_page(app: App, cases: tuple[str, str], tmp_path: Path) -> None:
    _html, _page = export(app, cases[1], tmp_path)
    page = tmp_path / f"{cases[1]}.html"
    shot, pdf = tmp_path / "case.png", tmp_path / "case.pdf"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert 'id="timeline-chart"' in dom.stdout and "EXHAUSTED" in dom.stdout
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=900,1200", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    subprocess.run([*flags, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-"
