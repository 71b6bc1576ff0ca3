"""Parity fixtures: every test runs on stdlib asyncio and on casyncio, each
with debug mode off and on. A behaviour that differs is a casyncio bug
unless the test documents it."""
import asyncio
import gc

import pytest

import casyncio

LOOPS = {
    "stdlib": asyncio.SelectorEventLoop,
    "casyncio": casyncio.new_event_loop,
}


@pytest.fixture(params=[(kind, debug) for kind in LOOPS
                        for debug in (False, True)],
                ids=lambda p: f"{p[0]}{'-debug' if p[1] else ''}")
def loop(request):
    kind, debug = request.param
    loop = LOOPS[kind]()
    loop.set_debug(debug)
    loop.kind = kind
    yield loop
    if not loop.is_closed():
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    asyncio.set_event_loop(None)
    gc.collect()


@pytest.fixture(params=list(LOOPS))
def loop_factory(request):
    """The loop class itself, for tests that make their own loops."""
    return LOOPS[request.param]
