"""The people around the minor: case roles in playbooks, numbers kept with the case."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import RecordingTransport, assert_no_secrets, register_minor, tick
from rapidresponse import audit, engine
from rapidresponse.app import App
from rapidresponse.casecontacts import mask, parse_numbers
from rapidresponse.engine import Context
from rapidresponse.errors import InputError
from rapidresponse.playbooks import parse_playbook

CARER, CONSULENT = "+32470000061", "+32470000062"


def log_of(app: App, ref: str) -> list[dict[str, Any]]:
    return list(audit.events(app.store, ref))


def step_states(app: App, ref: str) -> dict[str, str]:
    return dict(app.store.conn.execute(
        "SELECT s.step_key, s.state FROM steps s JOIN cases c ON c.id = s.case_id WHERE c.ref = ?",
        [ref]).fetchall())


def test_the_worrying_playbook_informs_carer_and_consulent_at_once(
    app: App, ctx: Context, transport: RecordingTransport, settings: Any,
) -> None:
    reg = register_minor(ctx, app, case_contacts=parse_numbers(
        {"carer": "0470 00 00 61", "consulent": "+32 470 00 00 62"}))
    tick(ctx, transport, settings)
    texts = dict(transport.sent)
    assert CARER in texts and CONSULENT in texts
    assert texts[CARER].startswith(f"{reg.ref}:") and "ACK" not in texts[CARER]
    states = step_states(app, reg.ref)
    assert states["inform-carer"] == "done" and states["inform-consulent"] == "done"
    assert states["confirm-guardian-told"] == "pending"  # the coordinator confirms the guardian

    # the log carries the case role and a masked number, never the number itself
    logged = json.dumps(log_of(app, reg.ref))
    assert CARER not in logged and CONSULENT not in logged
    sent = [e for e in log_of(app, reg.ref) if e["kind"] == "sms.sent" and e["detail"]["role"] == "case:carer"]
    assert sent[0]["detail"]["to"] == mask(CARER) == "+32*******61"

    # the stand-down reaches them too: the search has ended
    engine.resolve(ctx, reg.ref, "found")
    tick(ctx, transport, settings)
    stood_down = [to for to, body in transport.sent[len(texts):]]
    assert CARER in stood_down and CONSULENT in stood_down
    assert CARER not in json.dumps(log_of(app, reg.ref))


def test_a_case_role_without_a_contact_is_skipped_with_a_logged_reason(
    app: App, ctx: Context, transport: RecordingTransport, settings: Any,
) -> None:
    reg = register_minor(ctx, app, case_contacts=parse_numbers({"consulent": CONSULENT}))
    tick(ctx, transport, settings)
    states = step_states(app, reg.ref)
    assert states["inform-carer"] == "skipped" and states["inform-consulent"] == "done"
    assert not app.store.scalar("SELECT COUNT(*) FROM messages WHERE role = 'case:carer'")
    [skipped] = [e for e in log_of(app, reg.ref) if e["kind"] == "step.skipped"]
    assert skipped["detail"] == {"step": "inform-carer", "role": "case:carer",
                                 "reason": "the case names no carer"}
    assert not [e for e in log_of(app, reg.ref) if e["kind"] == "step.exhausted"]
    from rapidresponse.review import status

    assert not status(app.store, ctx.clock.now(), settings)["exhausted"]


def test_a_skipped_step_says_so_everywhere_and_never_counts_as_done(
    app: App, ctx: Context, transport: RecordingTransport, settings: Any, runner: Any,
) -> None:
    """Nobody was informed: `show`, `show --json`, `timeline` and `report` say `skipped` and
    why, never `done` (which read as if the carer had been told)."""
    from datetime import timedelta

    from rapidresponse.cli import cli
    from rapidresponse.figures import Period, report
    from rapidresponse.timeline import timeline

    reg = register_minor(ctx, app, case_contacts=parse_numbers({"consulent": CONSULENT}))
    tick(ctx, transport, settings)
    home = ["--home", str(app.home)]

    shown = runner.invoke(cli, [*home, "show", reg.ref])
    assert shown.exit_code == 0, shown.output
    [carer_line] = [line for line in shown.output.splitlines() if line.startswith("  inform-carer ")]
    assert "skipped: the case names no carer" in carer_line and "done" not in carer_line
    assert_no_secrets(carer_line)

    steps = {s["id"]: s for s in json.loads(runner.invoke(cli, [*home, "show", reg.ref, "--json"]).stdout)["steps"]}
    assert steps["inform-carer"]["state"] == "skipped"
    assert steps["inform-carer"]["skipped_because"] == "the case names no carer"
    assert steps["inform-carer"]["finished_by"] is None  # nobody did it, not even the system
    assert steps["inform-consulent"]["state"] == "done" and steps["inform-consulent"]["skipped_because"] is None

    story = [e for e in timeline(app.store, reg.ref).entries if e.step == "inform-carer"]
    assert [e.kind for e in story] == ["step.due", "step.skipped"]
    assert story[-1].state == "skipped" and "nobody informed" in story[-1].what

    figures = report(app.store, Period(ctx.clock.now() - timedelta(days=1), ctx.clock.now() + timedelta(hours=1)))
    assert figures["steps"]["skipped"] == 1
    assert "case:carer" not in {r["role"] for r in figures["roles"]}  # no acknowledgement of it
    assert all(counts["done"] == 0 for counts in figures["followups"].values())


def test_playbooks_accept_case_roles_without_a_contacts_entry(app: App) -> None:
    text = """
name = "kring"
[[steps]]
id = "tell-guardian"
at = "0m"
role = "case:guardian"
message = "{case}: melding geregistreerd ({role_title}). Bel {callback}."
"""
    playbook = parse_playbook(text, source="kring.toml", roles=app.contacts.roles)
    assert playbook.steps[0].role == "case:guardian"
    wrong = [
        (text.replace("case:guardian", "case:uncle"), "unknown case role"),
        (text.replace('Bel {callback}."', 'ACK {ack}"\nack_within = "1h"'), "informed, not asked"),
        (text.replace("case:guardian", "guardian"), "not a known role"),
    ]
    for bad, expected in wrong:
        with pytest.raises(InputError, match=expected):
            parse_playbook(bad, source="kring.toml", roles=app.contacts.roles)


def test_role_title_of_a_case_role_says_nothing_about_the_minor(
    app: App, ctx: Context, transport: RecordingTransport, settings: Any,
) -> None:
    from conftest import use_playbook_text

    playbook = use_playbook_text(app, "kring", """
name = "kring"
[[steps]]
id = "tell-guardian"
at = "0m"
role = "case:guardian"
message = "{case}: bericht voor {role_title}. Bel {callback}."
""")
    register_minor(ctx, app, playbook=playbook, case_contacts={"guardian": "+32470000063"})
    tick(ctx, transport, settings)
    [(to, body)] = transport.sent
    assert to == "+32470000063" and "ouder/voogd" in body


def test_contacts_check_does_not_ask_for_case_roles(app: App) -> None:
    from rapidresponse.checks import check_contacts

    findings = check_contacts(app.contacts, app.playbooks())
    assert not [f for f in findings if "case:" in f.text]


def test_a_reply_from_a_carer_is_logged_with_a_masked_number(app: App, ctx: Context) -> None:
    from rapidresponse.webhooks import handle_inbound

    reg = register_minor(ctx, app, case_contacts={"carer": CARER})
    handle_inbound(ctx, CARER, "Is ze al terug?", sid="SM" + "7" * 32)
    rejected = [e for e in audit.events(app.store) if e["kind"] == "sms.inbound_rejected"]
    assert rejected and rejected[0]["detail"]["from"] == mask(CARER)
    assert CARER not in json.dumps(list(audit.events(app.store))) and reg.ref
