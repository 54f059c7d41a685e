"""After the return: record how each follow-up went."""

from __future__ import annotations

import click

from rapidresponse.cli.common import CASE, TEXT, Env, console, emit_json, json_option, pass_env


@click.command("followup")
@click.argument("case", type=CASE)
@click.option("--return-interview", type=TEXT, metavar="done|declined|not-possible",
              help="How the return interview (within 72 h) went.")
@click.option("--referral", "referrals", type=(TEXT, TEXT), multiple=True,
              metavar="reference-centre|care-centre done|declined",
              help="A referral and how it went; repeat for both.")
@click.option("--safe-and-well", type=TEXT, metavar="yes|no|unknown",
              help="The safe-and-well check, when it could not be answered at the return; unknown"
                   " keeps it open (reopens it after a doubted yes), never lowers a no.")
@click.option("--sexual-violence-ruled-out", "sexual_violence", type=TEXT, metavar="yes|no|unknown",
              help="A changed answer: can sexual violence in the last 7 days be ruled out now?")
@click.option("--note", type=TEXT, help="Optional note (kept with the case, not in the log).")
@json_option
@pass_env
def followup(env: Env, case: str, return_interview: str | None, referrals: tuple[tuple[str, str], ...],
             safe_and_well: str | None, sexual_violence: str | None, note: str | None,
             as_json: bool) -> None:
    """Record the follow-ups of CASE after the return, or an answer that changed.

    Interview, referrals, the safe-and-well check; a changed answer (safe and well, sexual
    violence ruled out) makes the after-return steps follow it from now."""
    from rapidresponse import followup as library

    answers: list[tuple[str, str]] = []
    if safe_and_well is not None:
        answers.append((library.SAFE_AND_WELL, safe_and_well))
    if sexual_violence is not None:
        answers.append((library.SEXUAL_VIOLENCE, sexual_violence))
    if return_interview is not None:
        answers.append((library.RETURN_INTERVIEW, return_interview))
    for kind, result in referrals:
        answers.append((library.REFERRAL_WORDS.pick(kind, what="--referral"), result))
    done = library.record(env.app.context(), case, answers, note)
    if as_json:
        emit_json({"case": case, "recorded": done})
        return
    out = console()
    for entry in done:
        late = " (late)" if entry.get("late") else ""
        out.print(f"{case}: {entry.get('followup') or entry['answer']} {entry['result']}{late}.")
        if entry.get("steps_closed"):  # their reminders and escalations stop
            out.print(f"  finished: {', '.join(entry['steps_closed'])}")
        if entry.get("steps_stopped"):
            out.print(f"  stopped: {', '.join(entry['steps_stopped'])}")
        if entry.get("steps_planned"):
            out.print(f"  planned from now: {', '.join(entry['steps_planned'])}")


COMMANDS = [followup]
