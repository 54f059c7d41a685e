"""The two kinds of failure a user can meet, each with its own exit status."""


class RapidResponseError(Exception):
    """Base class: the message is a sentence a person can act on, free of personal data."""

    exit_code = 1


class InputError(RapidResponseError):
    """Bad input from the user or a file they edited: exit 2, nothing written."""

    exit_code = 2


class OperationalFailure(RapidResponseError):
    """Something outside the input went wrong (lock held, credentials missing): exit 1."""

    exit_code = 1
