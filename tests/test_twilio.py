"""The Twilio transport: the real `twilio` client against a local stand-in, never the internet.

Backoffs are stepped through with the fake clock; only the time-out test waits (a fraction of
a second) for a real socket to time out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from twilio_stub import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, Reply, TwilioStub

from conftest import CHAIN_PLAYBOOK, MINOR, assert_no_secrets, register_minor, tick, write_playbook
from rapidresponse import audit
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.dispatch import run_pass
from rapidresponse.engine import Context, acknowledge, resolve
from rapidresponse.errors import OperationalFailure
from rapidresponse.sms import PermanentSendError, TransientSendError
from rapidresponse.sms.twilio import TwilioTransport, classify, load_config
from rapidresponse.timeutil import from_iso

PROSECUTOR = "+32470000001"
PROSECUTOR_BACKUP = "+32470000002"
COORDINATOR = "+32470000041"



@pytest.fixture
def chain(app: App, home: Path) -> Any:
    write_playbook(home, "chain", CHAIN_PLAYBOOK)
    return app.playbook("chain")


def messages(ctx: Context) -> list[dict[str, Any]]:
    return ctx.store.all("SELECT * FROM messages ORDER BY id")


def kinds(ctx: Context, kind: str) -> list[dict[str, Any]]:
    return [e for e in audit.events(ctx.store) if e["kind"] == kind]


# ---------------------------------------------------------------- configuration


def test_missing_credentials_name_every_variable_and_no_secret() -> None:
    with pytest.raises(OperationalFailure) as err:
        load_config({})
    text = str(err.value)
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM"):
        assert name in text


def test_malformed_credentials_are_refused_without_echoing_them() -> None:
    env = {"TWILIO_ACCOUNT_SID": "ACnot-a-sid-s3cr3t", "TWILIO_AUTH_TOKEN": "tok en-s3cr3t",
           "TWILIO_FROM": "0470 12", "TWILIO_MESSAGING_SERVICE_SID": "MGbad",
           "RAPIDRESPONSE_TWILIO_BASE_URL": "ftp://x", "RAPIDRESPONSE_TWILIO_TIMEOUT": "-1"}
    with pytest.raises(OperationalFailure) as err:
        TwilioTransport(env).check()
    text = str(err.value)
    assert "s3cr3t" not in text and "0470 12" not in text
    for name in ("TWILIO_ACCOUNT_SID is malformed", "TWILIO_AUTH_TOKEN is malformed", "TWILIO_FROM",
                 "TWILIO_MESSAGING_SERVICE_SID", "RAPIDRESPONSE_TWILIO_BASE_URL",
                 "RAPIDRESPONSE_TWILIO_TIMEOUT"):
        assert name in text


def test_a_messaging_service_may_replace_the_sender(twilio_stub: TwilioStub) -> None:
    env = {**twilio_stub.env(), "TWILIO_MESSAGING_SERVICE_SID": "MG" + "a" * 32}
    del env["TWILIO_FROM"]
    TwilioTransport(env).send(PROSECUTOR, "RR-TEST")
    rec = twilio_stub.received()[0]
    assert rec.messaging_service_sid == "MG" + "a" * 32 and rec.from_ is None


def test_transport_is_chosen_by_settings_and_imports_lazily(twilio_env: dict[str, str],
                                                              home: Path) -> None:
    from rapidresponse.config import load_settings
    from rapidresponse.sms import make_transport

    transport = make_transport(load_settings(home))
    assert transport.name == "twilio"
    transport.check()


def test_classification_table() -> None:
    assert isinstance(classify(429, 20429, "Too Many Requests", {"Retry-After": "12"}), TransientSendError)
    assert classify(429, 20429, "x", {"retry-after": "12"}).retry_after == 12.0
    assert isinstance(classify(503, None, "down", {}), TransientSendError)
    for code in (21211, 21610, 21614):
        err = classify(400, code, "bad", {})
        assert isinstance(err, PermanentSendError) and err.code == str(code)
    assert isinstance(classify(404, 20404, "not found", {}), PermanentSendError)


# ---------------------------------------------------------------- sending


def test_success_goes_through_the_real_client(ctx: Context, app: App, chain: Any, settings: Any,
                                              twilio_stub: TwilioStub,
                                              twilio_transport: TwilioTransport) -> None:
    reg = register_minor(ctx, app, playbook=chain)
    tick(ctx, twilio_transport, settings)
    [msg] = messages(ctx)
    [rec] = twilio_stub.received()
    assert rec.authorised and rec.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert (rec.to, rec.from_, rec.body) == (PROSECUTOR, FROM_NUMBER, msg["body"])
    assert rec.status_callback is None  # no public URL: no callbacks asked
    assert msg["state"] == "sent" and msg["sid"] == rec.sid and msg["transport"] == "twilio"
    assert msg["sid"].startswith("SM") and len(msg["sid"]) == 34
    [event] = kinds(ctx, "sms.sent")
    assert event["detail"]["sid"] == rec.sid and event["case"] == reg.ref


def test_every_create_asks_for_status_callbacks_when_public(twilio_stub: TwilioStub) -> None:
    env = twilio_stub.env(RAPIDRESPONSE_PUBLIC_URL="https://rr.example.org/")
    TwilioTransport(env).send(PROSECUTOR, "RR-TEST")
    assert twilio_stub.received()[0].status_callback == "https://rr.example.org/twilio/status"


def test_wrong_token_is_retried_not_burnt_through_the_chain(twilio_stub: TwilioStub) -> None:
    env = {**twilio_stub.env(), "TWILIO_AUTH_TOKEN": "0" * 32}
    with pytest.raises(TransientSendError) as err:
        TwilioTransport(env).send(PROSECUTOR, "RR-TEST")
    assert err.value.code == "20003" and "TWILIO_AUTH_TOKEN" in err.value.text
    assert "0" * 32 not in err.value.text


def test_500_twice_then_success_is_one_message_with_logged_retries(
    ctx: Context, app: App, chain: Any, settings: Any, twilio_stub: TwilioStub,
    twilio_transport: TwilioTransport,
) -> None:
    register_minor(ctx, app, playbook=chain)
    twilio_stub.script(PROSECUTOR, Reply(status=500), Reply(status=500))
    run_pass(ctx, twilio_transport, settings, wait_for_retries=120)
    [msg] = messages(ctx)
    assert msg["state"] == "sent" and msg["attempts"] == 3
    assert [r.status for r in twilio_stub.received(PROSECUTOR)] == [500, 500, 201]
    assert msg["sid"] == twilio_stub.received(PROSECUTOR)[-1].sid
    retries = kinds(ctx, "sms.retry")
    assert [e["detail"]["attempt"] for e in retries] == [1, 2]
    assert all(e["detail"]["message"] == msg["id"] and e["detail"]["retry_in"] > 0 for e in retries)
    assert len(kinds(ctx, "sms.sent")) == 1
    assert twilio_stub.received(PROSECUTOR_BACKUP) == []  # a transient error never skips a contact


def test_429_backs_off_and_honours_retry_after(
    ctx: Context, app: App, chain: Any, settings: Any, clock: Any, twilio_stub: TwilioStub,
    twilio_transport: TwilioTransport,
) -> None:
    register_minor(ctx, app, playbook=chain)
    twilio_stub.script(PROSECUTOR, Reply(status=429, code=20429, retry_after="30"),
                       Reply(status=429, code=20429))
    started = clock.now()
    tick(ctx, twilio_transport, settings)
    [msg] = messages(ctx)
    assert msg["state"] == "queued" and msg["error_code"] == "20429"
    assert (from_iso(msg["not_before"]) - started).total_seconds() >= 30
    assert kinds(ctx, "sms.retry")[0]["detail"]["retry_in"] >= 30
    clock.advance(seconds=29)
    tick(ctx, twilio_transport, settings)
    assert len(twilio_stub.received(PROSECUTOR)) == 1  # not before Twilio said so
    clock.advance(seconds=2)
    tick(ctx, twilio_transport, settings)
    [msg] = messages(ctx)
    assert len(twilio_stub.received(PROSECUTOR)) == 2 and msg["state"] == "queued"
    second_wait = (from_iso(msg["not_before"]) - clock.now()).total_seconds()
    assert 1.0 <= second_wait <= 4.0  # attempt 2 without Retry-After: exponential, jittered
    clock.advance(seconds=second_wait)
    tick(ctx, twilio_transport, settings)
    [msg] = messages(ctx)
    assert msg["state"] == "sent" and msg["attempts"] == 3


def test_21211_moves_to_the_next_contact_at_once(
    ctx: Context, app: App, chain: Any, settings: Any, clock: Any, twilio_stub: TwilioStub,
    twilio_transport: TwilioTransport,
) -> None:
    reg = register_minor(ctx, app, playbook=chain)
    twilio_stub.fail(PROSECUTOR, 21211)
    before = clock.now()
    tick(ctx, twilio_transport, settings)
    assert clock.now() == before  # no waiting at all
    first, second = messages(ctx)
    assert first["state"] == "failed" and first["error_code"] == "21211"
    assert "not a valid phone number" in first["error_text"]
    assert (second["to_number"], second["state"]) == (PROSECUTOR_BACKUP, "sent")
    assert [r.to for r in twilio_stub.received()] == [PROSECUTOR, PROSECUTOR_BACKUP]
    [failed] = kinds(ctx, "sms.failed")
    assert failed["detail"]["error_code"] == "21211" and failed["case"] == reg.ref
    [moved] = kinds(ctx, "step.next_contact")
    assert moved["detail"]["reason"] == "message not delivered"


@pytest.mark.parametrize("code", [21610, 21614])
def test_unsubscribed_or_landline_fail_permanently(
    code: int, ctx: Context, app: App, chain: Any, settings: Any, twilio_stub: TwilioStub,
    twilio_transport: TwilioTransport,
) -> None:
    register_minor(ctx, app, playbook=chain)
    twilio_stub.fail(PROSECUTOR, code)
    tick(ctx, twilio_transport, settings)
    first, second = messages(ctx)
    assert (first["state"], first["error_code"], first["attempts"]) == ("failed", str(code), 1)
    assert second["state"] == "sent"


def test_every_contact_failing_escalates_to_the_coordinator(
    ctx: Context, app: App, chain: Any, settings: Any, twilio_stub: TwilioStub,
    twilio_transport: TwilioTransport,
) -> None:
    register_minor(ctx, app, playbook=chain)
    twilio_stub.fail(PROSECUTOR, 21211)
    twilio_stub.fail(PROSECUTOR_BACKUP, 21614)
    tick(ctx, twilio_transport, settings)
    assert [m["state"] for m in messages(ctx)][:2] == ["failed", "failed"]
    assert {r.to for r in twilio_stub.accepted()} >= {COORDINATOR}
    assert kinds(ctx, "step.escalated")
    result = CliRunner().invoke(cli, ["--home", str(app.home), "status"])
    assert "failed" in result.output and result.exit_code == 1


def test_a_timeout_is_transient_and_the_send_is_retried(
    ctx: Context, app: App, chain: Any, settings: Any, clock: Any, twilio_stub: TwilioStub,
) -> None:
    transport = TwilioTransport(twilio_stub.env(RAPIDRESPONSE_TWILIO_TIMEOUT="0.3"))
    register_minor(ctx, app, playbook=chain)
    twilio_stub.script(PROSECUTOR, Reply(delay=1.5))
    tick(ctx, transport, settings)
    [msg] = messages(ctx)  # the client gave up before the stub answered
    assert msg["state"] == "queued" and msg["error_code"] == "timeout"
    assert "0.3 s" in msg["error_text"]
    clock.advance(seconds=5)
    tick(ctx, transport, settings)
    [msg] = messages(ctx)
    assert msg["state"] == "sent" and msg["attempts"] == 2
    assert len(twilio_stub.received(PROSECUTOR)) == 2
    # Twilio may have accepted the first request: the second is a possible duplicate, and says so.
    assert msg["possible_duplicate"] == 1
    [sent] = [e for e in audit.events(ctx.store) if e["kind"] == "sms.sent"]
    assert sent["detail"]["possible_duplicate"] is True


def test_a_refused_connection_is_transient(ctx: Context, app: App, chain: Any, settings: Any) -> None:
    with TwilioStub() as stub:
        env = stub.env()
    transport = TwilioTransport(env)  # the stub is gone: nothing listens on its port
    register_minor(ctx, app, playbook=chain)
    tick(ctx, transport, settings)
    [msg] = messages(ctx)
    assert msg["state"] == "queued" and msg["error_code"] == "connection"


def test_an_outage_keeps_the_alert_waiting_and_sends_it_when_twilio_is_back(
    ctx: Context, app: App, chain: Any, settings: Any, twilio_stub: TwilioStub,
    twilio_transport: TwilioTransport,
) -> None:
    """503 after 503 says nothing about the number: no backup is burnt, nothing is lost."""
    register_minor(ctx, app, playbook=chain)
    twilio_stub.script(PROSECUTOR, *[Reply(status=503)] * (settings.max_attempts + 1))
    run_pass(ctx, twilio_transport, settings, wait_for_retries=600)
    [first] = messages(ctx)
    assert first["state"] == "sent" and first["attempts"] == settings.max_attempts + 2
    assert twilio_stub.received(PROSECUTOR_BACKUP) == []
    retries = [e for e in audit.events(ctx.store) if e["kind"] == "sms.retry"]
    assert len(retries) == settings.max_attempts + 1 and retries[-1]["detail"]["not_getting_through"]


FANOUT_CONTACTS = "\n".join(
    ['timezone = "Europe/Brussels"', 'callback = "+32 470 00 00 99"', "",
     "[roles.team]", 'title = "Team"', "contacts = ["]
    + [f'  {{ name = "Member {i}", phone = "+32 470 00 01 {i:02d}" }},' for i in range(12)]
    + ["]"]
)
FANOUT_PLAYBOOK = """\
name = "fanout"
title = "Fan-out"

[[steps]]
id = "everyone"
at = "0m"
role = "team"
notify = "all"
message = "{case}: bel {callback}."
"""


def test_sends_in_parallel_with_a_client_per_thread(tmp_path: Path, clock: Any) -> None:
    from rapidresponse.app import init_home
    from rapidresponse.config import load_settings

    home = tmp_path / "fan"
    init_home(home)
    for shipped in (home / "playbooks").glob("*.toml"):  # their roles are not in this file
        shipped.unlink()
    (home / "contacts.toml").write_text(FANOUT_CONTACTS, encoding="utf-8")
    write_playbook(home, "fanout", FANOUT_PLAYBOOK)
    app = App(home, "officer-test", clock)
    ctx = app.context()
    try:
        with TwilioStub(latency=0.25) as stub:
            transport = TwilioTransport(stub.env())
            register_minor(ctx, app, playbook=app.playbook("fanout"))
            report = run_pass(ctx, transport, load_settings(home))
            assert len(report.sent) == 12 and len(stub.accepted()) == 12
            assert stub.max_in_flight > 1, "the sends waited for each other: not parallel"
            assert len({r.sid for r in stub.accepted()}) == 12
    finally:
        app.close()


# ---------------------------------------------------------------- commands


def test_register_without_credentials_keeps_the_alerts_queued(
    runner: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch, twilio_stub: TwilioStub,
) -> None:
    """Exit 1, the case kept, nothing claimed; once configured, the daemon sends it all."""
    monkeypatch.setenv("RAPIDRESPONSE_SMS", "twilio")
    result = runner.invoke(cli, [
        "--home", str(home), "register", "--alias", MINOR["alias"], "--birth-date",
        MINOR["birth_date"], "--missing-since", "1h ago", "--last-seen", MINOR["last_seen"],
        "--indicator", "older-partner",
    ])
    assert result.exit_code == 1, result.output
    assert "TWILIO_ACCOUNT_SID is not set" in result.stderr
    assert "alerts stay queued" in result.stderr
    assert "Traceback" not in result.output
    app = App(home, "x")
    try:
        assert app.store.scalar("SELECT COUNT(*) FROM cases") == 1
        due = app.store.all("SELECT state FROM steps WHERE due_at <= (SELECT registered_at FROM cases)"
                            " AND role NOT LIKE 'case:%'")  # no carer named: those are skipped
        assert due and all(r["state"] == "active" for r in due)  # the steps fired ...
        queued = app.store.all("SELECT state, attempts FROM messages")
        assert queued and all(r["state"] == "queued" and r["attempts"] == 0 for r in queued)  # ... unsent
    finally:
        app.close()
    run = runner.invoke(cli, ["--home", str(home), "run", "--once"])
    assert run.exit_code == 1 and "not configured" in run.stderr
    assert twilio_stub.received() == []
    for key, value in twilio_stub.env().items():
        monkeypatch.setenv(key, value)
    run = runner.invoke(cli, ["--home", str(home), "run", "--once"])
    assert run.exit_code == 0, run.output
    app = App(home, "x")
    try:
        states = [r["state"] for r in app.store.all("SELECT state FROM messages")]
        assert states and set(states) == {"sent"}
        assert len(twilio_stub.accepted()) == len(states)
    finally:
        app.close()


def test_register_over_twilio_sends_the_first_alerts(
    runner: CliRunner, home: Path, twilio_env: dict[str, str], twilio_stub: TwilioStub,
) -> None:
    result = runner.invoke(cli, [
        "--home", str(home), "register", "--json", "--alias", MINOR["alias"], "--birth-date",
        MINOR["birth_date"], "--missing-since", "1h ago", "--last-seen", MINOR["last_seen"],
        "--indicator", "older-partner",
    ])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["sent"] and all(m["state"] == "sent" for m in payload["sent"])
    assert sorted(m["to"] for m in payload["sent"]) == sorted(twilio_stub.numbers())


def test_contacts_test_over_twilio_reports_each_contact(
    runner: CliRunner, home: Path, twilio_env: dict[str, str], twilio_stub: TwilioStub,
) -> None:
    result = runner.invoke(cli, ["--home", str(home), "contacts", "test", "youth_prosecutor"])
    assert result.exit_code == 0, result.output
    assert result.output.count(": sent") == 2
    assert sorted(twilio_stub.numbers()) == [PROSECUTOR, PROSECUTOR_BACKUP]
    assert all(b.startswith("RR-TEST") for b in twilio_stub.bodies())
    app = App(home, "x")
    try:
        assert {e["kind"] for e in audit.events(app.store)} >= {"sms.test"}
    finally:
        app.close()


def test_contacts_test_names_the_contact_that_failed(
    runner: CliRunner, home: Path, twilio_env: dict[str, str], twilio_stub: TwilioStub,
) -> None:
    twilio_stub.fail(PROSECUTOR_BACKUP, 21610)
    result = runner.invoke(cli, ["--home", str(home), "contacts", "test", "youth_prosecutor", "--json"])
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert [r["state"] for r in rows] == ["sent", "failed"]
    assert rows[1]["error_code"] == "21610" and "unsubscribed" in rows[1]["error_text"]


def test_contacts_test_without_credentials_exits_1_sending_nothing(
    runner: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAPIDRESPONSE_SMS", "twilio")
    result = runner.invoke(cli, ["--home", str(home), "contacts", "test", "youth_prosecutor"])
    assert result.exit_code == 1 and "not configured" in result.stderr


def test_contacts_check_accepts_the_shipped_files(runner: CliRunner, home: Path) -> None:
    result = runner.invoke(cli, ["--home", str(home), "contacts", "check"])
    assert result.exit_code == 0, result.output
    assert "Contacts OK" in result.output


def test_contacts_check_names_a_missing_role_and_an_unreachable_one(
    runner: CliRunner, home: Path,
) -> None:
    path = home / "contacts.toml"
    text = path.read_text(encoding="utf-8")
    start = text.index("[roles.child_focus]")
    end = text.index("[roles.mandated_agency]")
    text = text[:start] + text[end:]  # child_focus is gone
    text = text.replace('phone = "+32 470 00 00 31"', 'phone = "+32 3 200 00 31"')
    text = text.replace('phone = "+32 470 00 00 32"', 'phone = "+32 3 200 00 32"')
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(cli, ["--home", str(home), "contacts", "check", "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    errors = [f["text"] for f in report["findings"] if f["level"] == "error"]
    assert any("'child_focus'" in e and "no entry" in e for e in errors)
    assert any("'police'" in e and "no mobile" in e for e in errors)


# ---------------------------------------------------------------- privacy


def test_no_text_sent_over_twilio_identifies_the_minor(
    ctx: Context, app: App, settings: Any, clock: Any, twilio_stub: TwilioStub,
    twilio_transport: TwilioTransport,
) -> None:
    """A whole case (alerts, escalation, stand-down, after-return steps) over the wire."""
    import twilio_stub as stub_module

    reg = register_minor(ctx, app, suspected_victim=True)
    tick(ctx, twilio_transport, settings)
    clock.advance(minutes=16)
    tick(ctx, twilio_transport, settings)  # time-outs: the backups
    acknowledge(ctx, reg.ref, "youth_prosecutor")
    clock.advance(minutes=50)
    tick(ctx, twilio_transport, settings)
    resolve(ctx, reg.ref, "found")
    tick(ctx, twilio_transport, settings)
    clock.advance(hours=73)
    tick(ctx, twilio_transport, settings)
    bodies = twilio_stub.bodies()
    assert len(bodies) >= 10 and any("teruggevonden" in b for b in bodies)
    assert any(reg.ref in b for b in bodies)
    for rec in twilio_stub.received():
        assert_no_secrets(json.dumps(rec.form, ensure_ascii=False))
    # and every body any stand-in received in this test session so far
    assert stub_module.ALL_BODIES
    for body in stub_module.ALL_BODIES:
        assert_no_secrets(body)


def test_stub_checks_basic_auth_and_reports_twilio_errors(twilio_stub: TwilioStub) -> None:
    import requests

    url = f"{twilio_stub.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    bad = requests.post(url, data={"To": PROSECUTOR, "Body": "x", "From": FROM_NUMBER},
                        auth=(ACCOUNT_SID, "wrong"), timeout=5)
    assert bad.status_code == 401 and bad.json()["code"] == 20003
    missing = requests.post(url, data={"To": PROSECUTOR, "From": FROM_NUMBER},
                            auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert missing.status_code == 400 and missing.json()["code"] == 21602
    ok = requests.post(url, data={"To": PROSECUTOR, "Body": "x", "From": FROM_NUMBER},
                       auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    body = ok.json()
    assert ok.status_code == 201 and body["status"] == "queued" and body["sid"].startswith("SM")
