"""Parity fixtures: every test runs on stdlib asyncio and on casyncio, each
with debug mode off and on. A behaviour that differs is a casyncio bug
unless the test documents it."""
import asyncio
import gc
import socket

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


@pytest.fixture
def sockets():
    """Sockets a test makes; closed after it."""
    made = []
    yield made
    for s in made:
        s.close()


@pytest.fixture
def closed_port():
    """A loopback TCP port nothing listens on: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def full_listener():
    """A loopback listener whose accept queue is full, so that a new
    connect to it stays pending (its SYN goes unanswered)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(8):  # more than a backlog of 0 admits
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(listener.getsockname())
        except BlockingIOError:
            pass
        fillers.append(s)
    yield listener
    for s in fillers:
        s.close()
    listener.close()
