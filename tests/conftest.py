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


def pytest_addoption(parser):
    parser.addoption(
        "--casyncio-only", action="store_true",
        help="run only the casyncio side of the parity tests (the sanitizer "
             "run: the stdlib side executes none of casyncio's C)")


def on_stdlib_side(item):
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "stdlib" in callspec.id.split("-")


def in_subinterpreter():
    try:
        from concurrent import interpreters  # 3.14+
    except ImportError:
        return False
    return interpreters.get_current() != interpreters.get_main()


def pytest_collection_modifyitems(config, items):
    if in_subinterpreter():
        skip = pytest.mark.skip(reason="signals and fork: main interpreter "
                                "only, for stdlib's loop as for casyncio's")
        for item in items:
            if "main_interpreter" in item.keywords:
                item.add_marker(skip)
    if not config.getoption("--casyncio-only"):
        return
    stdlib_side = [item for item in items if on_stdlib_side(item)]
    if stdlib_side:
        config.hook.pytest_deselected(items=stdlib_side)
        items[:] = [item for item in items if not on_stdlib_side(item)]


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
