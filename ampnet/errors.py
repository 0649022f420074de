"""Errors a user can meet, and how entry points report them."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


class AmpnetError(Exception):
    """A problem with the user's input: the message names the file and the fix."""


class SettingError(AmpnetError, ValueError):
    """A setting that has no meaning: the message names the setting and the fix."""


def exit_on_user_error(fn: F) -> F:
    """Run ``fn``; an :class:`AmpnetError` becomes one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AmpnetError as err:
            print(f"ampnet: error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
