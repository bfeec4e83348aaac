"""Ctrl-C (SIGINT) during training: stop at the next step boundary, weights consistent.

Python raises KeyboardInterrupt between any two bytecodes, so a Ctrl-C landing
inside an optimizer step could leave the iteration counter advanced but the
weights not, or the Adam moments updated and the weights not. While fit (or
train_on_batch) runs, `deferred_sigint` replaces the default SIGINT handler with
one that only records the request; fit checks it after every step (once that
step's callbacks ran, so a checkpoint due at that batch is written) and between
validation batches, then raises KeyboardInterrupt as Keras would. The model then
holds exactly the weights of the last completed step, and a script looping over
many fit calls stops too.

A second Ctrl-C outside a step (a callback that hangs, a slow data generator)
raises at once. The handler is installed only in the main thread and only over
Python's default handler: a handler the program installed itself (or SIG_IGN) is
left alone, and the previous handler is always put back when fit returns.
"""

import signal
import threading
from typing import Optional

try:
    # The C functions: the public wrappers convert every handler to an enum, ~15 us per
    # call, which a script running thousands of small fits would pay on each one.
    from _signal import getsignal as _getsignal
    from _signal import signal as _setsignal
except ImportError:  # not CPython
    from signal import getsignal as _getsignal
    from signal import signal as _setsignal

__all__ = ["deferred_sigint", "StepGuard"]


class StepGuard:
    """The per-fit interrupt state. `with guard:` marks a step that must not be cut."""

    __slots__ = ("requested", "presses", "critical")

    def __init__(self):
        self.requested = False
        self.presses = 0
        self.critical = 0

    def __enter__(self):
        self.critical += 1
        return self

    def __exit__(self, *exc):
        self.critical -= 1
        return False

    def check(self, where=""):
        """Raise KeyboardInterrupt if a SIGINT arrived (call at a step boundary)."""
        if self.requested:
            self.requested = False
            raise KeyboardInterrupt(
                f"training interrupted (SIGINT){' ' + where if where else ''}; the model holds the "
                "weights of the last completed step")


_NOOP = StepGuard()  # handed out where no handler is installed: never requested
_active: Optional[StepGuard] = None


def _handler(signum, frame):
    g = _active
    if g is None:  # only installed while a guard is active; be the default handler otherwise
        raise KeyboardInterrupt
    g.presses += 1
    g.requested = True
    if g.presses > 1 and g.critical == 0:
        g.requested = False
        raise KeyboardInterrupt("training interrupted (second SIGINT)")


class deferred_sigint:
    """Defer SIGINT to step boundaries for the duration of a `with` block.

    `with deferred_sigint() as guard:` yields a StepGuard (a no-op one where nothing
    was installed). A request still pending when the block ends normally raises
    KeyboardInterrupt there, after the previous handler is back.
    """

    __slots__ = ("guard", "previous", "owner")

    def __enter__(self) -> StepGuard:
        global _active
        self.owner = False
        if threading.current_thread() is not threading.main_thread():
            self.guard = _NOOP
        elif _active is not None:  # a fit inside a fit (a callback training another model)
            self.guard = _active
        elif _getsignal(signal.SIGINT) is not signal.default_int_handler:
            self.guard = _NOOP  # the program's own handler, or SIG_IGN: leave it alone
        else:
            self.guard = StepGuard()
            self.previous = _setsignal(signal.SIGINT, _handler)
            _active = self.guard
            self.owner = True
        return self.guard

    def __exit__(self, exc_type, exc, tb):
        global _active
        if not self.owner:
            return False
        _setsignal(signal.SIGINT, self.previous)
        _active = None
        if exc_type is None:
            self.guard.check("at the end of the call")
        return False
