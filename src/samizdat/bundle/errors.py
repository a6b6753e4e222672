"""The one exception of the bundle package, with a message an operator can act on."""

from __future__ import annotations


class BundleError(ValueError):
    """A bundle, state file or event dump cannot be used as it is.

    ``where`` names the file, part and section that failed ("news.szb (part 2 of 3),
    events section"), so that the carrier knows which file to fetch again; the message
    ends with what to do next.
    """

    def __init__(self, where: str, problem: str, hint: str = ""):
        self.where = where
        self.problem = problem
        self.hint = hint
        text = f"{where}: {problem}" if where else problem
        super().__init__(f"{text}. {hint}" if hint else text)


class BombError(BundleError):
    """Decompressing would produce far more than any honest bundle: never opened, not
    even with ``--salvage``."""
