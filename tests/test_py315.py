"""What Python 3.15 changes in the loop itself, on stdlib's loop and on
casyncio's (the transports' context is tests/test_context.py's)."""
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.version_info < (3, 15),
                                reason="Python 3.15 behaviour")


def test_timer_due_now_runs_when_time_is_too_large_for_the_resolution(loop):
    """3.15's _run_once takes timers due before now plus the larger of the
    clock's resolution and one ulp of now: at 1e12 s a nanosecond does not
    move a double, and a timer due now would otherwise wait for ever."""
    now = 1e12
    loop.time = lambda: now
    fired = []
    loop.call_at(now, fired.append, "timer")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert fired == ["timer"]
