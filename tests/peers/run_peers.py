"""Runs the peers' own test suites on stdlib asyncio and on casyncio.

uvloop's, anyio's, uvicorn's and aiohttp's released sdists (pinned with
their hashes in sdists.txt) come from PyPI; each suite runs under pytest
with peer_loop.py twice, once per loop, with the same options. The two runs
of a suite go side by side (two cores); a test that passes on stdlib and not
on casyncio is then run again alone on both loops, so load cannot decide
it. The run fails when a test passes on stdlib and not on casyncio, or when
a casyncio run made no casyncio loop.

Tests that fail on both loops do not tell the loops apart; each is printed
with the reason known_failures.txt gives for it (this machine has no IPv6
on localhost, for one), or as unexplained.

Run with the interpreter of a venv that has casyncio and requirements.txt:
    python tests/peers/run_peers.py WORKDIR [SUITE...]
"""

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
LOOPS = ("stdlib", "casyncio")
TIMEOUT = 1200  # seconds per run: a hung suite fails instead of CI

# Per suite: the sdist, the folder pytest runs in (the sdist's root, or a
# copy of its tests alone where the root holds an uncompiled package that
# would shadow the installed one), and the options both loops get.
SUITES = {
    "uvloop": dict(
        sdist="uvloop-0.23.0", tests_only=True,
        # The Test_AIO_* classes are uvloop's tests run on asyncio's loop;
        # test_process_streams_redirect dup2()s sys.stdout's own fd.
        args=["tests", "-k", "Test_AIO_", "-o", "addopts=",
              "--capture=no"]),
    "anyio": dict(
        sdist="anyio-4.16.0", tests_only=False,
        args=["tests", "--peer-deselect-params=uvloop,trio"]),
    "uvicorn": dict(
        sdist="uvicorn-0.55.0", tests_only=False,
        # Without xdist's "-n 8": one process per loop.
        args=["tests", "-o", "addopts=-rxXs --strict-config --strict-markers",
              "--peer-deselect-params=uvloop"],
        deselect={
            "tests/test_compat.py::test_asyncio_run__default_loop_factory":
                "asserts that asyncio's own loop class is the default one, "
                "which the casyncio run replaces",
        }),
    "aiohttp": dict(
        sdist="aiohttp-3.14.5", tests_only=True,
        # Its functional tests: servers, clients, websockets, run_app.
        args=["-o", "addopts=--strict-markers",
              "-m", "not dev_mode and not autobahn and not internal",
              "tests/test_web_functional.py",
              "tests/test_client_functional.py",
              "tests/test_web_websocket_functional.py",
              "tests/test_client_ws_functional.py",
              "tests/test_web_sendfile_functional.py",
              "tests/test_web_server.py",
              "tests/test_run_app.py"]),
}


def fetch(work):
    sdists = os.path.join(work, "sdists")
    os.makedirs(sdists, exist_ok=True)
    names = [s["sdist"].rsplit("-", 1)[0] for s in SUITES.values()]
    # --no-binary for the packages alone: their build tools stay wheels.
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
         "--no-binary", ",".join(names), "--require-hashes",
         "-r", os.path.join(HERE, "sdists.txt"), "-d", sdists], check=True)
    return sdists


def unpack(sdists, work, suite):
    root = os.path.join(work, suite["sdist"])
    shutil.rmtree(root, ignore_errors=True)
    with tarfile.open(os.path.join(sdists, suite["sdist"] + ".tar.gz")) as t:
        t.extractall(work, filter="data")
    if not suite["tests_only"]:
        return root
    tests_root = root + "-tests"
    shutil.rmtree(tests_root, ignore_errors=True)
    os.makedirs(tests_root)
    shutil.move(os.path.join(root, "tests"), tests_root)
    # Markers and options, and the README a test serves from tests/..
    for name in ("pytest.ini", "setup.cfg", "README.rst"):
        if os.path.exists(os.path.join(root, name)):
            shutil.copy(os.path.join(root, name), tests_root)
    return tests_root


def suite_args(suite):
    return [*suite["args"], *(f"--deselect={test}"
                              for test in suite.get("deselect", ()))]


def pytest_command(loop, report, args):
    return [sys.executable, "-m", "pytest", "-p", "peer_loop",
            f"--peer-loop={loop}", f"--peer-report={report}",
            "-p", "no:cacheprovider", "-q", "--timeout=120", *args]


def run_both(cwd, args, work, tag):
    env = dict(os.environ, PYTHONPATH=HERE)
    running = {}
    for loop in LOOPS:
        report = os.path.join(work, f"{tag}-{loop}.json")
        if os.path.exists(report):  # an earlier run's must not stand in
            os.remove(report)
        log = open(os.path.join(work, f"{tag}-{loop}.log"), "w")
        running[loop] = (report, log, subprocess.Popen(
            pytest_command(loop, report, args), cwd=cwd, env=env,
            stdout=log, stderr=subprocess.STDOUT))
    results = {}
    for loop, (report, log, proc) in running.items():
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        try:
            with open(report) as f:
                results[loop] = json.load(f)
        except (OSError, ValueError):
            print(f"  {tag} on {loop}: no report; see {log.name}")
            results[loop] = {}
    return results


def passed(results):
    return {t for t, r in results.items() if r["outcome"] == "passed"}


def known_failures():
    reasons = []  # (suite, pattern, reason)
    with open(os.path.join(HERE, "known_failures.txt")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                suite, pattern, reason = line.split(None, 2)
                # Test ids have brackets; only * is a wildcard here.
                pattern = re.sub(r"[][]", r"[\g<0>]", pattern)
                reasons.append((suite, pattern, reason))
    return reasons


def explain(name, tests, reasons):
    by_reason = {}
    for test in sorted(tests):
        reason = next((r for s, p, r in reasons
                       if s == name and fnmatch.fnmatchcase(test, p)),
                      "no reason recorded")
        by_reason.setdefault(reason, []).append(test)
    for reason, ids in by_reason.items():
        print(f"  fail on both loops ({reason}):")
        for test in ids:
            print(f"    {test}")


def rerun_args(args, ids):
    """The suite's options with its test selection replaced by ids."""
    options = []
    skip_next = False
    for i, arg in enumerate(args):
        if skip_next:
            skip_next = False
        elif arg in ("-k", "-m"):
            skip_next = True
        elif arg.startswith("-"):
            options.append(arg)
            if arg in ("-o", "-p"):
                options.append(args[i + 1])
                skip_next = True
        # anything else is a test path, replaced by the ids
    return options + ids


def run_suite(name, suite, sdists, work, reasons):
    cwd = unpack(sdists, work, suite)
    print(f"=== peers: {name} ({suite['sdist']})", flush=True)
    for test, reason in suite.get("deselect", {}).items():
        print(f"  not run on either loop ({reason}): {test}")
    results = run_both(cwd, suite_args(suite), work, name)
    stdlib, casyncio = results["stdlib"], results["casyncio"]
    suspects = sorted(passed(stdlib) - passed(casyncio))
    if suspects:
        # Again, alone: a test that only lost under load is not a difference.
        print(f"  {len(suspects)} tests passed on stdlib only: run again, "
              f"alone, on both loops")
        rerun = run_both(cwd, rerun_args(suite_args(suite), suspects), work,
                         name + "-rerun")
        for loop, outcome in rerun.items():
            results[loop].update(outcome)
    lost = sorted(passed(stdlib) - passed(casyncio))
    made = sum(1 for r in casyncio.values() if r["casyncio_loops"])
    elsewhere = sorted(t for t, r in casyncio.items() if r["stdlib_loops"])
    both_failed = [t for t, r in stdlib.items() if r["outcome"] == "failed"
                   and casyncio.get(t, {}).get("outcome") == "failed"]
    explain(name, both_failed, reasons)
    for test in elsewhere:
        print(f"  made its own stdlib loop on the casyncio run: {test}")
    for test in lost:
        print(f"  PASSES ON STDLIB ONLY: {test}")
    ok = not lost and made > 0 and bool(stdlib) and bool(casyncio)
    print(f"  {name}: {len(stdlib)} tests, passed on stdlib "
          f"{len(passed(stdlib))}, on casyncio {len(passed(casyncio))} "
          f"({made} ran on a casyncio loop) -> {'ok' if ok else 'FAILED'}",
          flush=True)
    return ok, len(passed(stdlib)), len(passed(casyncio))


def main():
    work = os.path.abspath(sys.argv[1])
    chosen = sys.argv[2:] or list(SUITES)
    os.makedirs(work, exist_ok=True)
    sdists = fetch(work)
    reasons = known_failures()
    totals = []
    for name in chosen:
        totals.append((name, *run_suite(name, SUITES[name], sdists, work,
                                        reasons)))
    print("suite      passed on stdlib  passed on casyncio")
    for name, ok, std, cas in totals:
        print(f"{name:<10} {std:>16}  {cas:>18}  {'ok' if ok else 'FAILED'}")
    good = sum(1 for _, ok, _, _ in totals if ok)
    print(f"{good} passed, {len(totals) - good} failed")
    return 0 if good == len(totals) else 1


if __name__ == "__main__":
    sys.exit(main())
