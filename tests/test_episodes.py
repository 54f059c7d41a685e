"""Repeat episodes: every episode of a minor is linked; the third in 30 days calls a casusoverleg."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from conftest import MINOR, register_minor
from rapidresponse import engine, profiles
from rapidresponse.app import App
from rapidresponse.clock import FakeClock
from rapidresponse.engine import Context, Person, register
from rapidresponse.errors import InputError
from rapidresponse.reassessment import reassess


def three_episodes(ctx: Context, app: App, clock: FakeClock, gap_to_third: timedelta) -> engine.Registration:
    """Episodes at day 0 and day 10; the third goes missing `gap_to_third` after the first."""
    start = clock.now()
    first = register_minor(ctx, app, indicators=())
    engine.resolve(ctx, first.ref, "returned")
    clock.advance(days=10)
    second = register_minor(ctx, app, indicators=())
    engine.resolve(ctx, second.ref, "returned")
    clock.set(start + gap_to_third + timedelta(hours=1))
    return register_minor(ctx, app, indicators=(), missing_since=start + gap_to_third)


def test_the_third_episode_within_30_days_adds_repeat_runaway_and_plans_a_casusoverleg(
    app: App, ctx: Context, clock: FakeClock,
) -> None:
    third = three_episodes(ctx, app, clock, timedelta(days=30))  # the boundary counts
    assert len(third.earlier_episodes) == 2 and third.recent_episodes == third.earlier_episodes
    assert "repeat-runaway" in third.assessment.indicators
    assert "repeat-episodes" in third.assessment.flags
    assert any("3 episodes in 30 days" in r and "repeat-runaway added automatically" in r
               for r in third.assessment.reasons)
    meeting = [s for s in third.steps if s["id"] == "casusoverleg"]
    assert meeting and meeting[0]["role"] == "coordinator"
    [registered] = [e for e in engine_events(app, third.ref) if e["kind"] == "case.registered"]
    assert registered["detail"]["episodes_in_30_days"] == 3


def test_one_second_past_30_days_the_first_episode_no_longer_counts(
    app: App, ctx: Context, clock: FakeClock,
) -> None:
    third = three_episodes(ctx, app, clock, timedelta(days=30, seconds=1))
    assert len(third.earlier_episodes) == 2  # still linked ...
    assert len(third.recent_episodes) == 1  # ... but not recent
    assert "repeat-episodes" not in third.assessment.flags
    assert "repeat-runaway" not in third.assessment.indicators
    assert not [s for s in third.steps if s["id"] == "casusoverleg"]


def test_a_re_assessment_keeps_the_casusoverleg(app: App, ctx: Context, clock: FakeClock) -> None:
    third = three_episodes(ctx, app, clock, timedelta(days=20))
    result = reassess(ctx, third.ref, reason="nieuwe info", playbook_for=app.playbook_for,
                      indicators=("hotel",))
    assert "repeat-episodes" in result.flags
    flags = json.loads(app.store.scalar("SELECT flags FROM cases WHERE ref = ?", [third.ref]))
    assert "repeat-episodes" in flags


def test_episodes_of_a_profile_stay_linked_when_its_alias_changes(
    app: App, ctx: Context, clock: FakeClock,
) -> None:
    profiles.add(ctx, alias=MINOR["alias"], birth_date=date.fromisoformat(MINOR["birth_date"]))

    def episode() -> engine.Registration:
        known = profiles.for_episode(app.store, MINOR["alias"] if not renamed else "Nieuwenaam")
        person = Person(alias=known.alias, birth_date=known.birth_date, last_seen="x",
                        profile_id=known.profile_id)
        registration = register(ctx, person=person, missing_since=clock.now(), playbook=None,
                                playbooks_for=app.playbook_for)
        engine.resolve(ctx, registration.ref, "returned")
        return registration

    renamed = False
    first = episode()
    clock.advance(days=1)
    profiles.edit(ctx, MINOR["alias"], new_alias="Nieuwenaam")
    renamed = True
    second = episode()
    clock.advance(days=1)
    third = episode()
    assert second.earlier_episodes == [first.ref]
    assert third.earlier_episodes == [first.ref, second.ref]
    assert "repeat-episodes" in third.assessment.flags


@pytest.mark.parametrize("alias", ["zorbalina", "  Zorbalina "])
def test_the_same_minor_is_found_by_alias_and_birth_date(app: App, ctx: Context, alias: str) -> None:
    first = register_minor(ctx, app)
    person = Person(alias=alias, birth_date=date.fromisoformat(MINOR["birth_date"]), last_seen="x")
    again = register(ctx, person=person, missing_since=ctx.clock.now(), playbook=None,
                     playbooks_for=app.playbook_for, new_episode=True)
    assert again.earlier_episodes == [first.ref]


def test_one_open_case_per_minor_holds_for_a_profile_whose_alias_changed(app: App, ctx: Context) -> None:
    profiles.add(ctx, alias=MINOR["alias"], birth_date=date.fromisoformat(MINOR["birth_date"]))
    known = profiles.for_episode(app.store, MINOR["alias"])
    person = Person(alias=known.alias, birth_date=known.birth_date, last_seen="x",
                    profile_id=known.profile_id)
    first = register(ctx, person=person, missing_since=ctx.clock.now(), playbook=None,
                     playbooks_for=app.playbook_for)
    profiles.edit(ctx, MINOR["alias"], new_alias="Nieuwenaam")
    renamed = profiles.for_episode(app.store, "Nieuwenaam")
    person = Person(alias=renamed.alias, birth_date=renamed.birth_date, last_seen="x",
                    profile_id=renamed.profile_id)
    with pytest.raises(InputError, match=f"already has an open case, {first.ref}"):
        register(ctx, person=person, missing_since=ctx.clock.now(), playbook=None,
                 playbooks_for=app.playbook_for)


def engine_events(app: App, ref: str) -> list[dict]:  # type: ignore[type-arg]
    from rapidresponse import audit

    return list(audit.events(app.store, ref))
