"""Faults on purpose: memory allocations and syscalls that fail, on
casyncio and on stdlib's loop (tests/faults/). They run where
CASYNCIO_FAULTS=1 (tests/run_all.sh's fault step, on one Python, and its
sanitizer build): each case forks or starts processes of its own, which
one run of the suite is enough for.

The allocation sweep fails the K-th allocation while a scenario runs
(faults/alloc_sweep.py): casyncio must never crash, never stop its loop,
never leak an fd or one of its objects, and hang no more often than
stdlib's loop does; the table printed shows both loops' figures and each
hang's details.

The syscall faults make the Nth call of one libc function fail with one
errno (faults/failshim.c, preloaded) while ten clients echo through a
server on the same loop (faults/syscall_faults.py): the outcome (what each
client got, what the server's protocols and the exception handler were
told) must be stdlib's, with no fd left open.
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
pytestmark = pytest.mark.skipif(
    os.environ.get("CASYNCIO_FAULTS") != "1",
    reason="fault runs: CASYNCIO_FAULTS=1 (tests/run_all.sh's fault step)")


def run_module(module, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], cwd=HERE,
        env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=1800)


@pytest.fixture(scope="module")
def alloc_sweep():
    pytest.importorskip("_testcapi")
    stride = os.environ.get("CASYNCIO_ALLOC_STRIDE", "32")
    done = run_module("faults.alloc_sweep", "--stride", stride, "--json")
    assert done.returncode == 0, done.stderr
    *table, last = done.stdout.splitlines()
    print("\n" + "\n".join(table))
    return json.loads(last)


def scenario_names():
    sys.path.insert(0, HERE)
    try:
        from faults.scenarios import SCENARIOS
    finally:
        sys.path.remove(HERE)
    return list(SCENARIOS)


def popen_leak(scenario, finding):
    """CPython's subprocess.Popen leaks the parent's ends of its pipes when
    the failure strikes between os.pipe() and wrapping them in file
    objects, and raises: both loops call it (at stride 2 stdlib's sweep
    leaks 1 to 3 fds at the same Ks as casyncio's)."""
    return (scenario == "subprocess_pipes" and finding["outcome"] == "raised"
            and set(finding["leaks"]) == {"leaked_fds"})


@pytest.mark.parametrize("scenario", scenario_names())
def test_a_failed_allocation_never_breaks_the_loop(alloc_sweep, scenario):
    result = alloc_sweep[f"{scenario}/casyncio"]
    counts = result["counts"]
    assert counts["crashed"] == 0
    # Neither a loop that stopped working (but where a thread could not
    # start) nor an fd or loop object left once the loop closed.
    assert [f for f in result["findings"]
            if f["outcome"] == "stuck" or
            (f["leaks"] and not popen_leak(scenario, f))] == []
    # The sweep reached the scenario's end: its last runs were undisturbed.
    assert counts["ok"] >= 25


def test_failed_allocations_hang_casyncio_less_than_stdlib(alloc_sweep):
    """The hangs that remain (a Task or Future callback's work lost, or
    a connection a failed call left open, which keeps wait_closed()
    waiting): fewer on casyncio than on stdlib's loop over the sweep."""
    hangs = {kind: sum(result["counts"]["hung"]
                       for key, result in alloc_sweep.items()
                       if key.endswith("/" + kind))
             for kind in ("casyncio", "stdlib")}
    assert hangs["casyncio"] <= hangs["stdlib"]


def test_a_transport_that_failed_to_be_made_runs_nothing():
    """A failed allocation in a transport's constructor: the call raises,
    and nothing the constructor queued runs later (faults/half_made.py).
    On stdlib's loop connection_made can still run for the transport that
    was never returned, and its protocol waits for ever."""
    pytest.importorskip("_testcapi")
    done = run_module("faults.half_made", "casyncio")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for factory, outcome in report.items():
        assert outcome["raised"] > 0, factory
        assert outcome["half_made"] == [], factory


# Syscall faults: (program, call, nth, errno, count); count > 1 fails that
# many calls in a row (a storm). The programs are syscall_faults.py's.
SYSCALL_CASES = [
    *(("echo", "accept4", 1, e, 1) for e in
      ("EMFILE", "ENFILE", "ENOBUFS", "ECONNABORTED", "EPERM")),
    *(("echo", "recv", n, e, 1) for e in ("ECONNRESET", "EINTR", "ENOMEM")
      for n in (1, 7)),
    *(("echo", "send", n, e, 1) for e in ("EPIPE", "ECONNRESET", "ENOBUFS")
      for n in (1, 7)),
    ("echo", "send", 3, "EAGAIN", 50),
    *((program, "epoll_ctl", n, e, 1) for program in ("echo", "accepted")
      for e in ("ENOMEM", "ENOSPC") for n in (1, 3)),
    ("echo", "epoll_wait", 1, "EINTR", 5),
    # A kernel before 5.11 (RHEL 8's 4.18, where the wheels run): casyncio
    # falls back to epoll_wait for good.
    ("echo", "epoll_pwait2", 1, "ENOSYS", 1),
    *(("udp", call, n, e, 1) for call in ("recvfrom", "sendto")
      for e in ("ECONNREFUSED", "ENOBUFS", "EINTR") for n in (1, 7)),
    *(("subprocess", "pidfd_open", 1, e, 3) for e in ("ENOSYS", "EMFILE")),
    ("threadsafe", "eventfd_write", 1, "EAGAIN", 20),
    *(("sendfile", "sendfile", 1, e, 1) for e in ("EINVAL", "ENOSYS")),
    ("sendfile", "sendfile", 2, "EAGAIN", 10),
]
# Calls only casyncio makes: stdlib's wake-up is a socket, and it waits
# in epoll_wait with a timeout in milliseconds.
CASYNCIO_ONLY_CALLS = {"eventfd_write", "epoll_pwait2"}


def fails_the_connection(casyncio, stdlib):
    """epoll_ctl refusing an accepted connection: casyncio fails that
    transport (connection_lost(OSError), the client reset), so the server
    closes; stdlib's loop reports the error from its callback and leaves
    the connection open and unwatched: the client times out and
    wait_closed() waits for ever."""
    assert casyncio["clients"] == [[0, "ConnectionResetError"]] + [
        [10, None]] * 9
    assert casyncio["server_lost"].count("OSError") == 1
    assert casyncio["server_closed"] and casyncio["handler"] == []


def falls_back_to_a_thread(casyncio, stdlib):
    """pidfd_open's ENOSYS (a kernel before 5.3, or a seccomp filter):
    casyncio watches the child from a thread instead; stdlib's loop, which
    found pidfd_open working earlier, raises the OSError."""
    assert casyncio["children"] == [["child", 0], ["child", 1],
                                    ["child", 2]]


# Where casyncio does better than stdlib on purpose (docs/compatibility.md,
# "Differences from stdlib").
BETTER_THAN_STDLIB = {
    ("accepted", "epoll_ctl"): fails_the_connection,
    ("subprocess", "pidfd_open", "ENOSYS"): falls_back_to_a_thread,
}


@pytest.fixture(scope="module")
def failshim(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("shim") / "libcio_failshim.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", path,
                    os.path.join(HERE, "faults", "failshim.c"), "-ldl"],
                   check=True)
    return path


def syscall_outcome(failshim, kind, case):
    preload = " ".join(filter(None, [os.environ.get("LD_PRELOAD"),
                                     failshim]))
    done = run_module("faults.syscall_faults", kind, *case, env={
        "LD_PRELOAD": preload, "CIO_FAILSHIM": failshim})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("case", SYSCALL_CASES,
                         ids=lambda c: "-".join(map(str, c)))
def test_a_failing_syscall_ends_as_on_stdlib(failshim, case):
    casyncio = syscall_outcome(failshim, "casyncio", case)
    stdlib = syscall_outcome(failshim, "stdlib", case)
    assert casyncio.pop("fired") > 0, "the case failed no call"
    fired_on_stdlib = stdlib.pop("fired")
    assert fired_on_stdlib > 0 or case[1] in CASYNCIO_ONLY_CALLS
    assert casyncio["leaked_fds"] == []
    better = (BETTER_THAN_STDLIB.get(case[:2]) or
              BETTER_THAN_STDLIB.get(case[:2] + case[3:4]))
    if better:
        better(casyncio, stdlib)
    else:
        assert casyncio == stdlib
