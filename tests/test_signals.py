"""SIGTERM raised as one exception, the same for `fishermask run` and `label serve`."""

from __future__ import annotations

import asyncio
import signal

import pytest

from fishermask import cli
from fishermask.label import server


def test_one_terminated_for_run_and_serve():
    assert cli._Terminated is server._Terminated
    assert issubclass(server._Terminated, KeyboardInterrupt)  # Ctrl-C's clean-up runs for it


def test_sigterm_in_an_event_loop_callback_stops_the_loop():
    """`label serve`'s SIGTERM exception was a plain BaseException: raised while the event
    loop ran a callback (uvicorn starting or stopping), asyncio logged it as 'Exception in
    callback' and went on, so the server did not stop; asyncio lets a KeyboardInterrupt
    through."""

    async def serving() -> None:
        asyncio.get_running_loop().call_soon(server._raise_terminated, signal.SIGTERM, None)
        await asyncio.sleep(0.5)

    loop = asyncio.new_event_loop()
    task = loop.create_task(serving())
    try:
        with pytest.raises(server._Terminated):
            loop.run_until_complete(task)
    finally:
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        loop.close()
