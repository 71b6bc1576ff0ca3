"""Run CPython's own test.test_asyncio against casyncio, beside stdlib.

Every loop the asyncio policy creates becomes a loop of the target kind, and
the loop-agnostic mixins (EventLoopTestsMixin, BaseSockTestsMixin, ...) are
bound to it. A test counts as *exercised* only if it created at least one
target loop; the report gives, per module, how many tests were exercised and
how many of those passed, for casyncio and for the stdlib loop run the same
way. The exit status is 1 when a gated test passes on stdlib but not on
casyncio.

    python tests/conformance/run_cpython_suite.py [--modules m1,m2] [-v]

Each module runs in its own child process (a crash costs one module, not
the run); children print JSON, the parent prints the table.
"""
import argparse
import concurrent.futures
import importlib
import json
import os
import re
import subprocess
import sys
import time
import unittest

# Modules of this scope, each with an optional regex: only tests
# whose id matches it are gated (the rest of the module is still reported).
GATED = {
    "test_tasks": None, "test_futures2": None, "test_locks": None,
    "test_queues": None, "test_taskgroups": None, "test_timeouts": None,
    "test_waitfor": None, "test_context": None, "test_threads": None,
    "test_pep492": None, "test_runners": None, "test_sock_lowlevel": None,
    # 3.14's watcher tests check the class of stdlib's private
    # loop._watcher and its _threads; casyncio watches children in C
    # (loop_process.c) with the same guarantee (the thread fallback waits
    # with WNOWAIT, so the pid stays reserved until the loop reaps it).
    "test_subprocess": r"^(?!.*(test_watcher_implementation|"
                       r"test_pid_not_reaped_before_exit_published))",
    "test_unix_events": None,
    # This 3.14 test swaps the _sock of stdlib's selector transport once
    # its _read_ready_cb is None: internals the C transport has not.
    "test_ssl": r"^(?!.*test_remote_shutdown_receives_trailing_data_on_"
                r"slow_socket)",
    "test_sslproto": None, "test_sendfile": None,
    "test_server": None, "test_streams": None, "test_buffered_proto": None,
    "test_protocols": None, "test_eager_task_factory": None,
    "test_staggered": None, "test_server_context": None, "test_graph": None,
    "test_free_threading": None,
    # All but two tests of the selector loop's internals: its Python-level
    # _run_once and its self-pipe fd count.
    "test_events": r"^(?!.*(timeout_rounding|internal_fds))",
}
# Tests of the gate's exclusions above that would hang on casyncio rather
# than fail (waiting on a peer that a stdlib-internals patch was meant to
# drive): not run on casyncio, so the module's other tests still count.
NOT_RUN_ON_CASYNCIO = re.compile(
    r"test_remote_shutdown_receives_trailing_data_on_slow_socket")
# On the portable build on Linux (casyncio.POLLER "kqueue"), libkqueue
# reads a socket's pending error (SO_ERROR) to fill in the event, which
# clears it (docs/development.md): these tests see a refused or failed
# connect go unreported. test_sendfile_pre_and_post_data (EAGAIN from
# loop.sendfile() after a buffered write) is not explained yet. Reported,
# not gated, there.
LIBKQUEUE_DIFFERENCES = re.compile(
    r"\.(test_sock_client_fail|test_cancel_sock_accept|"
    r"test_open_connection_happy_eyeball_refcycles|"
    r"test_create_connection_local_addr_skip_different_family|"
    r"test_connect_timeout_warning|test_sendfile_pre_and_post_data)$")


def on_libkqueue():
    import casyncio
    return casyncio.POLLER == "kqueue" and sys.platform.startswith("linux")


# --all also reports every other test_asyncio module: most test stdlib's
# own classes (base_events, selector_events, futures with mock loops), so
# few of their tests create a target loop.

# Loop-agnostic mixins, bound to the target loop: module -> [(mixin names)].
MIXINS = {
    "test_events": [("EventLoopTestsMixin", "SubprocessTestsMixin")],
    "test_sock_lowlevel": [("BaseSockTestsMixin",)],
    "test_sendfile": [("SockSendfileMixin", "SendfileMixin")],
    "test_subprocess": [("SubprocessMixin",)],
}
# Classes whose setUp makes an asyncio.SelectorEventLoop() and whose tests
# are not about that loop's internals: run with the target loop instead.
REBOUND_SETUP = {
    "test_unix_events": ("SelectorEventLoopUnixSocketTests",),
}
# Classes that pin a stdlib selector loop themselves: skipped, as the
# bound mixins above run the same tests on the target loop.
# (test_server_context's AsyncioEventLoopTests make theirs with
# asyncio.new_event_loop, which the policy answers: they run.)
PINNED = re.compile(r"(Select|EPoll|Poll|Kqueue|Proactor)EventLoopTests|"
                    r"SelectEventLoopTests|(?<!^Asyncio)EventLoopTests$|"
                    r"^(Select|Poll|EPoll|Kqueue|Proactor)")

created = 0


def SWAPPED_FUNCTIONS():
    """Module attributes that test_events' GetEventLoop tests replace."""
    import asyncio
    import asyncio.events
    names = ("_get_running_loop", "_set_running_loop", "get_running_loop",
             "get_event_loop")
    return [(module, name) for module in (asyncio, asyncio.events)
            for name in names]


def target_factory(kind):
    if kind == "casyncio":
        import casyncio
        cls = casyncio.Loop
    else:
        import asyncio
        cls = asyncio.SelectorEventLoop

    def new_loop(*args, **kwargs):
        global created
        created += 1
        return cls()
    return new_loop


def patch_policy(factory):
    import asyncio
    import warnings
    # The policy system is deprecated from 3.14 on; the suite still uses it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.DefaultEventLoopPolicy
        policy._loop_factory = staticmethod(factory)
        asyncio.set_event_loop_policy(None)


def rebind_setup(module, factory):
    """REBOUND_SETUP's classes of module, their loop replaced by factory's
    right after their own setUp made it."""
    classes = []
    for name in REBOUND_SETUP.get(module.__name__.rsplit(".", 1)[1], ()):
        base = getattr(module, name, None)
        if base is None:
            continue

        def setUp(self, base=base):
            base.setUp(self)
            self.loop.close()
            self.loop = factory()
            self.set_event_loop(self.loop)
        classes.append(type("Target" + name, (base,), {"setUp": setUp}))
    return classes


def bind_mixins(module, factory):
    """Test classes running module's loop-agnostic mixins on factory."""
    import test.test_asyncio.utils as test_utils
    classes = []
    for names in MIXINS.get(module.__name__.rsplit(".", 1)[1], []):
        bases = tuple(getattr(module, n) for n in names if hasattr(module, n))
        if not bases:
            continue

        def create_event_loop(self):
            return factory()

        def setUp(self):
            super(self.bound_class, self).setUp()
            # SubprocessMixin leaves making self.loop to its subclass.
            if getattr(self, "loop", None) is None:
                self.loop = factory()
                self.set_event_loop(self.loop)
        cls = type("Target" + bases[0].__name__, bases + (test_utils.TestCase,),
                   {"create_event_loop": create_event_loop, "setUp": setUp})
        cls.bound_class = cls
        classes.append(cls)
    return classes


class CountingResult(unittest.TestResult):
    """Records, per test, whether it created a target loop and its outcome."""

    def __init__(self, verbose):
        super().__init__()
        self.outcomes = {}
        self.verbose = verbose
        self._start = created
        # The originals, taken before any test could replace them.
        self._saved = [getattr(module, name)
                       for module, name in SWAPPED_FUNCTIONS()]

    def startTest(self, test):
        self._start = created
        self._outcome = "passed"
        super().startTest(test)

    def _set(self, outcome):
        self._outcome = outcome

    def addError(self, test, err):
        super().addError(test, err)
        self._set("failed")
        self._report(test, err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set("failed")
        self._report(test, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set("skipped")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._set("passed")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set("failed")

    def _report(self, test, err):
        if self.verbose:
            print("FAIL", test.id(), file=sys.stderr)
            print(self._exc_info_to_string(err, test)[-1500:],
                  file=sys.stderr)

    def stopTest(self, test):
        super().stopTest(test)
        # A test whose setUp fails never runs the tearDown that undoes its
        # patches; restore them so one failure cannot cascade.
        for (module, name), value in zip(SWAPPED_FUNCTIONS(), self._saved):
            setattr(module, name, value)
        self.outcomes[test.id()] = (self._outcome, created > self._start)


def iter_tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from iter_tests(item)
        else:
            yield item


def run_module(name, kind, verbose):
    factory = target_factory(kind)
    patch_policy(factory)
    module = importlib.import_module("test.test_asyncio." + name)
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    from test.test_asyncio.functional import FunctionalTestCaseMixin
    rebound = set()
    for test in iter_tests(loader.loadTestsFromModule(module)):
        cls = type(test)
        if issubclass(cls, FunctionalTestCaseMixin):
            # FunctionalTestCaseMixin classes pin their loop through
            # new_loop() only: run them with it returning a target loop.
            if cls not in rebound:
                rebound.add(cls)
                bound = type("Target" + cls.__name__, (cls,),
                             {"new_loop": lambda self: factory()})
                suite.addTests(loader.loadTestsFromTestCase(bound))
        elif not PINNED.search(cls.__name__):
            if kind == "casyncio" and NOT_RUN_ON_CASYNCIO.search(test.id()):
                name = test._testMethodName
                setattr(test, name, unittest.skip("stdlib internals")(
                    getattr(test, name)))
            suite.addTest(test)
    for cls in bind_mixins(module, factory) + rebind_setup(module, factory):
        suite.addTests(loader.loadTestsFromTestCase(cls))
    result = CountingResult(verbose)
    # Module-level fixtures (setUpModule/tearDownModule) run via the suite.
    unittest.TestSuite([suite]).run(result)
    return result.outcomes


def child_main(args):
    outcomes = run_module(args.child, args.loop, args.verbose)
    sys.stdout.write("\n@@RESULT@@" + json.dumps(outcomes) + "\n")


# A module's child may use this much address space. test_runners'
# test_asyncio_run_without_uncancel, which runs stdlib's loop over a mocked
# selector, was seen (once, on a loaded machine) missing its SIGINT and
# spinning, recording every call in the mock: 12 GB within minutes. With
# the cap that ends in a MemoryError, not in the machine running out.
CHILD_ADDRESS_SPACE = 4 << 30


def limit_address_space():
    import resource
    resource.setrlimit(resource.RLIMIT_AS,
                       (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))


def run_child(name, kind, verbose, timeout):
    cmd = [sys.executable, __file__, "--child", name, "--loop", kind]
    if verbose:
        cmd.append("-v")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL,
                              preexec_fn=limit_address_space)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout}s"
    if verbose and proc.stderr:
        sys.stderr.write(proc.stderr[-20000:])
    marker = proc.stdout.rfind("@@RESULT@@")
    if marker < 0:
        return None, f"crashed (exit {proc.returncode}): {proc.stderr[-800:]}"
    return json.loads(proc.stdout[marker + 10:]), None


def counts(outcomes, pattern=None):
    used = passed = 0
    for test_id, (outcome, exercised) in outcomes.items():
        if not exercised or outcome == "skipped":
            continue
        if pattern and not re.search(pattern, test_id):
            continue
        used += 1
        passed += outcome == "passed"
    return used, passed


def available_modules():
    """test_asyncio's modules in this Python (some are 3.12+ only)."""
    import test.test_asyncio as package
    return sorted(name[:-3] for name in os.listdir(package.__path__[0])
                  if name.startswith("test_") and name.endswith(".py"))


def other_modules():
    return [name for name in available_modules()
            if name not in GATED and not name.startswith("test_windows")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", help="comma-separated module names")
    parser.add_argument("--all", action="store_true",
                        help="also report modules outside the gate")
    parser.add_argument("--loop", default="casyncio")
    parser.add_argument("--child")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    if args.child:
        return child_main(args)

    modules = [name for name in GATED if name in available_modules()]
    modules += other_modules() if args.all else []
    if args.modules:
        modules = args.modules.split(",")
    jobs = {}
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        for name in modules:
            for kind in ("casyncio", "asyncio"):
                jobs[name, kind] = pool.submit(run_child, name, kind,
                                               args.verbose, args.timeout)
    print(f"CPython {sys.version.split()[0]} test.test_asyncio on casyncio "
          f"vs the stdlib loop ({time.monotonic() - t0:.0f}s)")
    print(f"{'module':<20} {'casyncio exercised/passed':>26} "
          f"{'stdlib exercised/passed':>24}  gated regressions")
    regressions = []
    libkqueue = on_libkqueue()
    libkqueue_lost = []
    gated = 0
    totals = [0, 0, 0, 0]
    for name in modules:
        mine, err_mine = jobs[name, "casyncio"].result()
        base, err_base = jobs[name, "asyncio"].result()
        if mine is None or base is None:
            print(f"{name:<20} casyncio: {err_mine or 'ok'}; "
                  f"stdlib: {err_base or 'ok'}")
            if name in GATED:
                regressions.append(f"{name} (did not complete)")
            continue
        m_used, m_pass = counts(mine)
        b_used, b_pass = counts(base)
        totals = [totals[0] + m_used, totals[1] + m_pass,
                  totals[2] + b_used, totals[3] + b_pass]
        lost = []
        if name in GATED:
            pattern = GATED[name]
            for test_id, (outcome, exercised) in base.items():
                if outcome != "passed" or not exercised:
                    continue
                if pattern and not re.search(pattern, test_id):
                    continue
                if mine.get(test_id, ("missing",))[0] == "passed":
                    gated += 1
                elif libkqueue and LIBKQUEUE_DIFFERENCES.search(test_id):
                    libkqueue_lost.append(test_id)
                else:
                    gated += 1
                    lost.append(test_id)
        regressions += lost
        print(f"{name:<20} {m_used:>17}/{m_pass:<8} {b_used:>15}/{b_pass:<8}"
              f"  {len(lost) if name in GATED else '-'}")
    print(f"{'total':<20} {totals[0]:>17}/{totals[1]:<8} "
          f"{totals[2]:>15}/{totals[3]:<8}")
    for test_id in libkqueue_lost:
        print("LIBKQUEUE (not gated)", test_id)
    for test_id in regressions:
        print("REGRESSION", test_id)
    print(f"all exercised tests: casyncio passed {totals[1]} of {totals[0]}, "
          f"stdlib {totals[3]} of {totals[2]} (docs/compatibility.md "
          f"explains the failures outside the gate)")
    print(f"gated: {gated - len(regressions)} passed, "
          f"{len(regressions)} failed")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
