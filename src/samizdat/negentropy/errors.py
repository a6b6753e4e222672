"""The one exception type of the negentropy core.

Every message that reaches :class:`~samizdat.negentropy.protocol.Negentropy` comes
from a peer we do not trust. The relay needs to tell "this peer sent garbage"
(answer ``NEG-ERR`` and carry on) apart from "our code is broken" (a bug to log), so
everything the parser or the reconciler can object to is raised as
:class:`NegentropyError` and nothing else: never ``IndexError``, ``KeyError`` or a
bare ``ValueError`` from deep inside.
"""

from __future__ import annotations


class NegentropyError(ValueError):
    """A negentropy message, parameter or storage operation was refused.

    A subclass of :class:`ValueError` so that callers which already treat bad input as
    ``ValueError`` keep working; the message is meant to be readable by the peer (the
    relay may put it after ``error:`` in a ``NEG-ERR``).
    """
