"""pytest plugin that runs a peer project's test suite on one event loop.

Loaded by run_peers.py with ``-p peer_loop``:

--peer-loop=casyncio   every loop the suite makes is casyncio's: the policy,
                       and the default one a suite resets to, is casyncio's
                       (asyncio.new_event_loop, asyncio.run,
                       Runner and aiohttp's and uvloop's test loops go through
                       it) and anyio's asyncio backend gets
                       loop_factory=casyncio.new_event_loop, as its users
                       configure it;
--peer-loop=stdlib     the suite runs as it would without casyncio.
--peer-report=FILE     writes, per test: its outcome and which loops it made.
--peer-deselect-params=A,B
                       drops parametrised tests whose id names another loop
                       or backend (uvloop, trio): they test those, not ours.

Loops are counted when made (casyncio.Loop and asyncio's BaseEventLoop
constructors), so the report shows which loop each test really ran on.
"""

import asyncio
import json

import pytest

_made = {"casyncio": 0, "stdlib": 0}


def pytest_addoption(parser):
    group = parser.getgroup("peer_loop")
    group.addoption("--peer-loop", choices=("stdlib", "casyncio"),
                    required=True)
    group.addoption("--peer-report", required=True)
    group.addoption("--peer-deselect-params", default="")


def _count_constructions(cls, kind):
    init = cls.__init__

    def counting_init(self, *args, **kwargs):
        _made[kind] += 1
        init(self, *args, **kwargs)

    cls.__init__ = counting_init


def _anyio_defaults_to(loop_factory):
    try:
        from anyio._backends import _asyncio as anyio_asyncio
    except ImportError:
        return
    init = anyio_asyncio.TestRunner.__init__
    default_factory = loop_factory

    def init_with_factory(self, *, debug=None, use_uvloop=False,
                          loop_factory=None):
        if loop_factory is None and not use_uvloop:
            loop_factory = default_factory
        init(self, debug=debug, use_uvloop=use_uvloop,
             loop_factory=loop_factory)

    anyio_asyncio.TestRunner.__init__ = init_with_factory


def _uvloop_tests_take_casyncio_for_asyncio():
    # uvloop's tests tell asyncio's loop by its module's name and give
    # any other loop uvloop's extensions to test (sendto() without an
    # address on a connected socket, which asyncio's loop fails with a
    # fatal write error by design); casyncio behaves as asyncio.
    try:
        from uvloop import _testbase
    except ImportError:
        return
    import casyncio
    is_asyncio_loop = _testbase.BaseTestCase.is_asyncio_loop
    _testbase.BaseTestCase.is_asyncio_loop = lambda self: (
        isinstance(self.loop, casyncio.Loop) or is_asyncio_loop(self))


def pytest_configure(config):
    import casyncio
    _count_constructions(asyncio.BaseEventLoop, "stdlib")
    _count_constructions(casyncio.Loop, "casyncio")
    if config.getoption("peer_loop") == "casyncio":
        # Suites reset the policy between tests (set_event_loop_policy(None),
        # uvloop's AIOTestCase installs DefaultEventLoopPolicy()): the
        # default one is casyncio's too.
        asyncio.DefaultEventLoopPolicy = casyncio.EventLoopPolicy
        casyncio.install()
        _anyio_defaults_to(casyncio.new_event_loop)
        _uvloop_tests_take_casyncio_for_asyncio()
    config._peer_results = {}


def pytest_collection_modifyitems(config, items):
    tokens = [t for t in config.getoption("peer_deselect_params").split(",")
              if t]
    if not tokens:
        return
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec and any(t in callspec.id for t in tokens):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = dict(_made)
    item._peer_outcome = "passed"
    yield
    results = item.config._peer_results
    results[item.nodeid] = {
        "outcome": item._peer_outcome,
        "casyncio_loops": _made["casyncio"] - before["casyncio"],
        "stdlib_loops": _made["stdlib"] - before["stdlib"],
    }


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # The worst phase decides: a teardown error fails a passed test.
    if report.failed:
        item._peer_outcome = "failed"
    elif report.skipped and item._peer_outcome == "passed":
        item._peer_outcome = ("xfailed" if hasattr(report, "wasxfail")
                              else "skipped")


def pytest_sessionfinish(session):
    config = session.config
    with open(config.getoption("peer_report"), "w") as f:
        json.dump(config._peer_results, f, indent=0, sort_keys=True)
