"""SIGTERM (and ``label serve``'s SIGHUP) raised as an exception in the main thread.

``fishermask run`` and ``label serve`` install :func:`raise_terminated` as their SIGTERM
handler, so ``kill PID`` or a service manager's stop ends them the way Ctrl-C does, with their
own words: ``fishermask run`` says where to resume and exits 143, ``label serve`` answers the
requests under way, says what was saved and exits 0.
"""

from __future__ import annotations

from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP for ``label serve``), raised in the main thread by
    :func:`raise_terminated`. A :class:`KeyboardInterrupt`, so every clean-up written for
    Ctrl-C runs for it too, and asyncio lets it through (another exception raised while the
    event loop runs a callback is logged as 'Exception in callback' and dropped); told apart
    from Ctrl-C with ``isinstance`` where the words or the exit status differ."""


def raise_terminated(signum: int, frame: Any) -> None:
    """The signal handler: raise :class:`Terminated`."""
    raise Terminated
