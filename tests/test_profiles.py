"""Pre-registered profiles: a known minor registered in one short command, the log kept clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from conftest import MINOR, SECRETS, assert_no_secrets, run_cli_at_a_terminal
from rapidresponse import audit
from rapidresponse.app import App
from rapidresponse.cli import cli

#: What a carer writes in a profile; each value is distinctive, so a leak is easy to find.
PROFILE_TEXTS = {
    "--description": "Draagt een oranje Zwiebeljas",
    "--associates": "vriendin Plumperdientje",
    "--places": "snackbar Krakeelhoek",
    "--phone": "+32 470 00 00 77",
    "--social": "@zorba_glimmer",
    "--medical": "Inhalator Blauwvinkel",
}
CARER, CONSULENT, GUARDIAN = "+32470000061", "+32470000062", "+32470000063"
PROFILE_SECRETS = (*SECRETS, "Zwiebeljas", "Plumperdientje", "Krakeelhoek", "zorba_glimmer",
                   "Blauwvinkel", "470 00 00 77", CARER, CONSULENT, GUARDIAN)


def invoke(runner: CliRunner, home: Path, *args: str, input: str | None = None) -> Result:
    return runner.invoke(cli, ["--home", str(home), *args], input=input)


def add_profile(runner: CliRunner, home: Path, *extra: str) -> Result:
    args = ["profiles", "add", "--alias", MINOR["alias"], "--birth-date", MINOR["birth_date"],
            "--name", MINOR["full_name"], "--placement", "institution",
            "--indicator", "school-absence", "--indicator", "substance-use",
            "--carer-phone", "0470 00 00 61", "--consulent-phone", "+32 470 00 00 62"]
    for option, value in PROFILE_TEXTS.items():
        args += [option, value]
    result = invoke(runner, home, *args, *extra)
    assert result.exit_code == 0, result.stderr
    return result


def log_text(home: Path) -> str:
    app = App(home, "reader")
    try:
        return json.dumps(list(audit.events(app.store)), ensure_ascii=False)
    finally:
        app.close()


def assert_clean(text: str) -> None:
    for secret in PROFILE_SECRETS:
        assert secret not in text, f"personal data {secret!r} leaked"


def test_add_show_list_edit_remove(runner: CliRunner, home: Path) -> None:
    created = add_profile(runner, home)
    assert "P-0001" in created.stdout
    assert_clean(created.stdout)

    shown = json.loads(invoke(runner, home, "profiles", "show", MINOR["alias"].upper(), "--json").stdout)
    assert shown["profile"] == "P-0001" and shown["alias"] == MINOR["alias"]
    assert shown["name"] == MINOR["full_name"] and shown["birth_date"] == MINOR["birth_date"]
    assert shown["places"] == PROFILE_TEXTS["--places"] and shown["placement"] == "institution"
    assert shown["indicators"] == ["school-absence", "substance-use"]
    assert shown["case_contacts"] == {"carer": CARER, "consulent": CONSULENT, "guardian": None}
    text = invoke(runner, home, "profiles", "show", MINOR["alias"]).stdout
    assert "Krakeelhoek" in text and CARER in text  # the officer sees it all on the terminal

    listed = json.loads(invoke(runner, home, "profiles", "list", "--json").stdout)
    assert [(p["key"], p["alias"], p["episodes"]) for p in listed] == [("P-0001", MINOR["alias"], 0)]

    edited = invoke(runner, home, "profiles", "edit", MINOR["alias"], "--guardian-phone", "0470000063",
                    "--drop-indicator", "substance-use", "--indicator", "hotel", "--medical", "")
    assert edited.exit_code == 0, edited.stderr
    assert_clean(edited.stdout)
    shown = json.loads(invoke(runner, home, "profiles", "show", MINOR["alias"], "--json").stdout)
    assert set(shown["indicators"]) == {"school-absence", "hotel"}
    assert shown["medical"] is None and shown["case_contacts"]["guardian"] == GUARDIAN

    removed = invoke(runner, home, "profiles", "remove", MINOR["alias"], "--yes")
    assert removed.exit_code == 0 and "P-0001" in removed.stdout
    assert invoke(runner, home, "profiles", "show", MINOR["alias"]).exit_code == 2
    app = App(home, "reader")
    try:
        assert app.store.scalar("SELECT COUNT(*) FROM profiles") == 0
        assert app.store.scalar("SELECT COUNT(*) FROM case_contacts") == 0
    finally:
        app.close()

    kinds = [e["kind"] for e in json.loads(log_text(home)) if e["kind"].startswith("profile")]
    assert kinds == ["profile.created", "profile.viewed", "profile.viewed", "profiles.listed",
                     "profile.changed", "profile.viewed", "profile.removed"]
    assert_clean(log_text(home))


def test_the_log_names_who_and_which_profile_and_which_fields_never_their_values(
    runner: CliRunner, home: Path,
) -> None:
    add_profile(runner, home)
    invoke(runner, home, "--operator", "carer-anna", "profiles", "edit", MINOR["alias"], "--places", "elders")
    events = [e for e in json.loads(log_text(home)) if e["kind"] == "profile.changed"]
    assert events[0]["actor"] == "carer-anna"
    assert events[0]["detail"] == {"profile": "P-0001", "fields": ["places"]}


def test_mistakes_are_one_sentence_that_never_repeats_the_alias(runner: CliRunner, home: Path) -> None:
    add_profile(runner, home)
    cases: list[tuple[list[str], str]] = [
        (["profiles", "show", "Onbekendia"], "no profile with that alias"),
        (["profiles", "add", "--alias", MINOR["alias"], "--birth-date", "2012-01-01"], "exists already"),
        (["profiles", "add", "--alias", "Onbekendia", "--birth-date", "1990-01-01"], "adult"),
        (["profiles", "add", "--alias", "Onbekendia", "--birth-date", "2012-01-01",
          "--carer-phone", "Onbekendia 12"], "--carer-phone is not a valid phone number"),
        (["profiles", "add", "--alias", "Onbekendia", "--birth-date", "2012-01-01",
          "--indicator", "nope"], "unknown indicator"),
        (["profiles", "edit", MINOR["alias"]], "nothing to change"),
        (["register", "--profile", "Onbekendia", "--missing-since", "now", "--last-seen", "x"],
         "no profile with that alias"),
        (["register", "--profile", MINOR["alias"], "--alias", "x", "--missing-since", "now",
          "--last-seen", "x"], "leave out --alias"),
        (["register", "--missing-since", "now", "--last-seen", "x"], "--profile ALIAS"),
    ]
    for args, expected in cases:
        result = invoke(runner, home, *args)
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Onbekendia" not in result.stderr and MINOR["alias"] not in result.stderr


def test_register_from_a_profile_takes_the_rest_and_carries_its_indicators(
    runner: CliRunner, home: Path,
) -> None:
    add_profile(runner, home)
    result = invoke(runner, home, "register", "--profile", MINOR["alias"], "--missing-since", "2h ago",
                    "--last-seen", MINOR["last_seen"], "--indicator", "hotel", "--json")
    assert result.exit_code == 0, result.stderr
    registered: dict[str, Any] = json.loads(result.stdout)
    # the profile's indicators plus the episode's own
    assert {"school-absence", "substance-use", "hotel"} <= set(registered["indicators"])
    assert registered["worrying"]
    shown = json.loads(invoke(runner, home, "show", registered["case"], "--json").stdout)
    assert shown["person"]["alias"] == MINOR["alias"] and shown["person"]["name"] == MINOR["full_name"]
    assert shown["person"]["birth_date"] == MINOR["birth_date"] and shown["placement"] == "institution"
    assert shown["case_contacts"] == {"carer": CARER, "consulent": CONSULENT, "guardian": None}
    assert shown["profile"] == "P-0001"
    # a second episode: the profile's indicators again, and the first episode linked
    assert invoke(runner, home, "resolve", registered["case"], "--outcome", "returned").exit_code == 0
    second = json.loads(invoke(runner, home, "register", "--profile", MINOR["alias"], "--missing-since",
                               "now", "--last-seen", "elders", "--carer-phone", "0470 00 00 64",
                               "--json").stdout)
    assert {"school-absence", "substance-use"} <= set(second["indicators"])
    assert "hotel" not in second["indicators"]
    assert second["earlier_episodes"] == [registered["case"]]
    shown = json.loads(invoke(runner, home, "show", second["case"], "--json").stdout)
    assert shown["case_contacts"]["carer"] == "+32470000064"  # the episode's own number wins
    profile = json.loads(invoke(runner, home, "profiles", "show", MINOR["alias"], "--json").stdout)
    assert profile["episodes"] == [registered["case"], second["case"]] and profile["used_at"]
    assert_clean(log_text(home))


def test_a_removed_profile_leaves_its_episodes_whole(runner: CliRunner, home: Path) -> None:
    add_profile(runner, home)
    ref = json.loads(invoke(runner, home, "register", "--profile", MINOR["alias"], "--missing-since",
                            "now", "--last-seen", "x", "--json").stdout)["case"]
    declined = run_cli_at_a_terminal("profiles", "remove", MINOR["alias"], home=home, typed="n\n")
    assert declined.returncode == 0 and declined.stdout.strip() == "Nothing removed."
    assert run_cli_at_a_terminal("profiles", "remove", MINOR["alias"], home=home, typed="y\n").returncode == 0
    shown = json.loads(invoke(runner, home, "show", ref, "--json").stdout)
    assert shown["person"]["alias"] == MINOR["alias"] and shown["profile"] is None
    assert shown["case_contacts"]["carer"] == CARER  # the case keeps its own copy
    assert_no_secrets(log_text(home))


def test_removing_without_a_terminal_needs_yes(runner: CliRunner, home: Path) -> None:
    add_profile(runner, home)
    refused = invoke(runner, home, "profiles", "remove", MINOR["alias"])  # no terminal, no --yes
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr == "Error: profiles remove needs --yes when not run at a terminal; nothing was done\n"
    assert invoke(runner, home, "profiles", "show", MINOR["alias"]).exit_code == 0  # still there
