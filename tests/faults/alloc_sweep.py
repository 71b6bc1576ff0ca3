"""Allocation-failure sweep: for K = 1, 1 + stride, ..., the K-th memory
allocation after set-up fails (`_testcapi.set_nomemory(K, K + 1)`, one
failure, later ones succeed) while a scenario of scenarios.py runs on a
loop, each K in a child forked from here.

Each run ends one way:
  ok       the scenario returned what an undisturbed run returns;
  raised   it raised (a MemoryError, or what followed from one);
  hung     it had not finished after --timeout s (the loop still ran);
  stuck    the loop itself stopped working (its stack is dumped), or
           cannot run again (it still counts as running);
  crashed  the child died by a signal.
After each run the child closes the loop and collects garbage; what it
counts as leaked: fds open that were not before the scenario, and
objects of the loop's own (Handles, transports, servers) still alive.

A hang is explained when the loop's exception handler was given the
MemoryError from a callback of a Task (its step or wake-up), of a
Future (asyncio's done-callbacks) or of stdlib's stream protocols
(StreamReaderProtocol's connection_made, which starts the server's
client_connected_cb, and SubprocessStreamProtocol's),
or from a callback whose innermost Python frame is stdlib's asyncio code
(unix_events' _child_watcher_callback, say), or when a Task waits on a
Future that is done: that callback's work is lost (a done Future whose
call_soon of its callbacks failed has dropped them), which is how
CPython's Tasks, Futures and asyncio's Python are made, for any loop. A stuck loop
is explained when it waits in threading's Thread.start() for a thread
the failure kept from starting (CPython's threading). Other hangs are
listed with the Tasks left pending and the exception handler's calls:
the usual one is a connection a failed call left open, which keeps the
server's wait_closed() waiting; a watcher or waiter of the loop's own
that a failed allocation left registered but unreachable would be a
bug.

    python -m faults.alloc_sweep --loop casyncio [--stride 4]
        [--scenarios tcp_streams,tls] [--json] [--gcov]
(run from tests/). Prints a table per loop and scenario, and with --json
one JSON line of the counts and the unexplained runs.
"""
import argparse
import asyncio
import ctypes
import faulthandler
import gc
import json
import os
import select
import signal
import sys
import tempfile
import time
import traceback

import _testcapi

from faults.scenarios import SCENARIOS, make_resources

OUTCOMES = ("ok", "raised", "hung", "stuck", "crashed")
# Timeouts after which a child is stuck: the scenario's run and the
# clean-up's three bounded runs, and one more.
STUCK_AFTER = 5
# Callbacks of asyncio's Tasks and Futures (their C steps and wake-ups,
# and the Python done-callbacks of futures.py, tasks.py (gather, wait,
# wait_for) and timeouts.py), and stdlib's stream protocol: a Task whose
# step could not be scheduled or run is never stepped again, a Future
# callback that raised is not called again.
LOST_CALLBACKS = ("TaskStepMethWrapper", "task_wakeup", "_asyncio.Task",
                  "_asyncio.Future", "asyncio/futures.py",
                  "asyncio/tasks.py", "asyncio/timeouts.py",
                  "<asyncio.streams.StreamReaderProtocol object",
                  "SubprocessStreamProtocol.connection_made")
# How a Task waiting on a done Future reads in the sweep's "pending" lines.
WAITS_ON_DONE_FUTURE = "wait_for=<Future finished"


ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep


def frame_name(frame):
    """file:line function, the file as asyncio/NAME for stdlib's asyncio
    package, else its base name."""
    name = (("asyncio/" + frame.filename[len(ASYNCIO_DIR):])
            if frame.filename.startswith(ASYNCIO_DIR)
            else os.path.basename(frame.filename))
    return f"{name}:{frame.lineno} {frame.name}"


def new_loop_factory(kind):
    if kind == "casyncio":
        import casyncio
        return casyncio.new_event_loop
    return asyncio.SelectorEventLoop


def loop_objects(kind):
    """{id: type name} of the live GC-tracked objects of the loop's own
    types (Handles, transports, servers...)."""
    modules = ("casyncio",) if kind == "casyncio" else (
        "asyncio.selector_events", "asyncio.base_events", "asyncio.events",
        "asyncio.unix_events", "asyncio.sslproto",
        "asyncio.base_subprocess")
    return {id(o): type(o).__qualname__ for o in gc.get_objects()
            if type(o).__module__.startswith(modules)}


def open_fds():
    return set(os.listdir("/proc/self/fd"))


def child(kind, scenario, k, timeout, resources, report):
    """Runs in the forked child; writes one JSON line per event to report:
    the exception handler's calls as they happen (a stuck child is killed
    before it can say more), then the outcome."""
    def say(**entry):
        os.write(report, (json.dumps(entry, default=repr) + "\n").encode())

    def handler(loop, context):
        exc = context.get("exception")
        callback = getattr(context.get("handle"), "_callback", None)
        # The Python frames the exception went through, innermost last.
        frames = traceback.extract_tb(getattr(exc, "__traceback__", None))
        say(event=context.get("message", ""), exception=type(exc).__name__,
            callback=repr(callback)[:200],
            where=[frame_name(f) for f in frames[-3:]])

    # A loop that stops working shows where: the stack, then exit.
    faulthandler.dump_traceback_later(
        STUCK_AFTER * timeout, exit=True,
        file=os.fdopen(report, "w", closefd=False))
    loop = resources["new_loop"]()
    loop.set_exception_handler(handler)
    asyncio.set_event_loop(loop)
    loop.run_until_complete(asyncio.sleep(0))
    gc.collect()
    fds, objects = open_fds(), loop_objects(kind)
    task = loop.create_task(SCENARIOS[scenario](loop, resources))
    run_raised = False
    try:
        run_for(loop, [task], timeout,
                lambda: k and _testcapi.set_nomemory(k, k + 1))
    except Exception:  # run_forever() itself raised the MemoryError
        run_raised = True
    finally:
        _testcapi.remove_mem_hooks()
    result = None
    if run_raised:
        outcome = "raised"
    elif not task.done():
        outcome = "hung"
    elif task.cancelled() or task.exception() is not None:
        outcome = "raised"
    else:
        outcome, result = "returned", task.result()
    # What the scenario left running is cancelled, as asyncio.run does,
    # but not waited for without end: a Task whose step was lost never
    # runs again, cancelled or not.
    tasks = asyncio.all_tasks(loop)
    if outcome == "hung":  # where each Task waits, for whoever reads this
        for pending in tasks:
            say(event="pending", exception="", callback=repr(pending)[:300])
    for pending in tasks:
        pending.cancel()
    pending = None
    try:
        run_for(loop, tasks, timeout)
        run_for(loop, [loop.create_task(loop.shutdown_asyncgens()),
                       loop.create_task(loop.shutdown_default_executor())],
                timeout)
    except RuntimeError as exc:
        # The failure left the loop marked as running (stdlib's loop, when
        # its run_forever() cleanup itself runs out of memory).
        say(event="the loop cannot run again", exception=repr(exc),
            callback="")
        outcome = "stuck"
    del task, tasks, pending
    if outcome != "stuck":
        loop.close()
    asyncio.set_event_loop(None)
    del loop
    # A finalizer (an unclosed transport's) can keep its object for one
    # more collection.
    gc.collect()
    gc.collect()
    left = loop_objects(kind)
    faulthandler.cancel_dump_traceback_later()
    say(outcome=outcome, result=result,
        leaked_fds=len(open_fds() - fds),
        leaked_objects=sorted({name for key, name in left.items()
                               if key not in objects}))


def run_for(loop, tasks, timeout, start=lambda: None):
    """Runs the loop until the tasks are done or timeout has passed; calls
    start() right before. Not run_until_complete(): it stops on a
    done-callback, which a failed allocation can lose, and then the loop
    would run for ever while working. Here a timer set up before start()
    stops it, so a run_forever() that does not return means a loop that
    stopped working."""
    if not tasks:
        return
    waited = asyncio.gather(*tasks, return_exceptions=True)

    def stop(_):
        loop.stop()

    waited.add_done_callback(stop)
    # Two: one failed allocation can make one stop() raise.
    stoppers = [loop.call_later(timeout + extra, loop.stop)
                for extra in (0, 0.1)]
    start()
    loop.run_forever()
    for stopper in stoppers:
        stopper.cancel()
    waited.remove_done_callback(stop)


# How a child ends: at once, skipping Python's and C's exit handlers
# (--gcov: through C's exit(), whose handlers write a --coverage build's
# counters; see faults/error_paths.py).
child_exit = os._exit


def run_one(kind, scenario, k, timeout, resources):
    """(outcome, events, leaks) of one forked run; K = 0 fails nothing
    and its outcome is the scenario's result."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)  # its own children go with it (below)
        os.close(read_end)
        code = 2  # the harness failed: the parent raises
        try:
            child(kind, scenario, k, timeout, resources, write_end)
            code = 0
        except BrokenPipeError:
            pass  # the parent stopped listening: it found the child stuck
        except BaseException:
            traceback.print_exc()
        finally:
            child_exit(code)
    os.close(write_end)
    output = b""
    # The child's own watchdog fires first.
    deadline = time.monotonic() + STUCK_AFTER * timeout + 3
    stuck = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read_end], [], [], left)[0]:
            stuck = True
            os.kill(pid, signal.SIGKILL)
            break
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        output += chunk
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    try:  # what the child started and left behind (the fork scenario's)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    entries, dump = [], []
    for line in output.decode().splitlines():
        (entries if line.startswith("{") else dump).append(
            json.loads(line) if line.startswith("{") else line)
    events = [e for e in entries if "event" in e]
    final = [e for e in entries if "outcome" in e]
    if stuck or (dump and not final):
        where = next((line.strip() for line in dump if "File" in line), "")
        return "stuck", events + [{"stuck_in": where}], {}
    if os.WIFSIGNALED(status):
        return "crashed", events, {"signal": os.WTERMSIG(status)}
    if not final or os.WEXITSTATUS(status):
        raise RuntimeError(f"the sweep's child failed at K={k} on {kind}, "
                           f"{scenario}: {status=} {events}")
    final = final[0]
    leaks = {key: final[key] for key in ("leaked_fds", "leaked_objects")
             if final[key] and final["outcome"] != "stuck"}  # not closed
    if k == 0:
        return final["result"], events, leaks
    if final["outcome"] == "returned":
        final["outcome"] = ("ok" if final["result"] == resources["expected"]
                            else "raised")
    return final["outcome"], events, leaks


def explained_stuck(events):
    """Whether a loop that stopped working waits in threading's
    Thread.start() for a thread whose start-up the failure broke
    (CPython's threading: run_in_executor starts threads)."""
    return any("threading.py" in e.get("stuck_in", "") for e in events)


def explained(events):
    """Whether a hang follows from a Task's, Future's or stream
    protocol's callback that the failure made raise or dropped (see the
    module's docstring)."""
    return any(e["exception"] == "MemoryError" and
               (any(name in e["callback"] + e["event"]
                    for name in LOST_CALLBACKS) or
                (e.get("where") or [""])[-1].startswith("asyncio/")) or
               e["event"] == "pending" and
               WAITS_ON_DONE_FUTURE in e["callback"]
               for e in events)


def sweep(kind, scenario, stride, timeout, resources, limit):
    """Counts per outcome, and the runs that are findings: leaks,
    crashes, stuck loops and unexplained hangs."""
    counts = dict.fromkeys(OUTCOMES, 0)
    counts["explained"] = 0
    findings = []
    clean_in_a_row = 0
    k = 1
    # Past the scenario's last allocation every run is ok: stop after
    # 25 of those in a row (or at limit).
    while k <= limit and clean_in_a_row < 25:
        outcome, events, leaks = run_one(kind, scenario, k, timeout,
                                         resources)
        counts[outcome] += 1
        clean_in_a_row = clean_in_a_row + 1 if (
            outcome == "ok" and not events) else 0
        if (outcome == "hung" and explained(events) or
                outcome == "stuck" and explained_stuck(events)):
            counts["explained"] += 1
        elif outcome in ("hung", "stuck", "crashed") or leaks:
            findings.append({"k": k, "outcome": outcome, "leaks": leaks,
                             "events": events[:3]})
        k += stride
    counts["runs"] = sum(counts[o] for o in OUTCOMES)
    counts["last_k"] = k - stride
    return counts, findings


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", choices=("casyncio", "stdlib"),
                        action="append")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--limit", type=int, default=20000)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--gcov", action="store_true",
                        help="children exit through C's exit()")
    args = parser.parse_args()
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"no scenario {', '.join(sorted(unknown))}; there are "
                     f"{', '.join(SCENARIOS)}")
    if args.gcov:
        global child_exit
        child_exit = ctypes.CDLL(None).exit
    kinds = args.loop or ["casyncio", "stdlib"]
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        resources = make_resources(directory)
        print(f"Python {sys.version.split()[0]}: the K-th allocation fails,"
              f" K = 1, 1+{args.stride}, ... until 25 runs in a row are "
              f"undisturbed; hung = not done after {args.timeout:g}s "
              f"(explained: a Task's, Future's or stream protocol's callback "
              f"lost)")
        print(f"{'scenario':<26}{'loop':<10}{'runs':>6}{'ok':>6}"
              f"{'raised':>8}{'hung':>6}{'explained':>11}{'stuck':>7}"
              f"{'crashed':>9}{'findings':>10}")
        for scenario in args.scenarios.split(","):
            for kind in kinds:
                resources.update(kind=kind, new_loop=new_loop_factory(kind),
                                 after_fork=_testcapi.remove_mem_hooks)
                # The undisturbed result, from a run with no failure.
                resources["expected"], events, leaks = run_one(
                    kind, scenario, 0, args.timeout, resources)
                if events or leaks or resources["expected"] in OUTCOMES:
                    raise RuntimeError(f"{scenario} on {kind} undisturbed: "
                                       f"{resources['expected']} {events} "
                                       f"{leaks}")
                counts, findings = sweep(kind, scenario, args.stride,
                                         args.timeout, resources, args.limit)
                results[scenario, kind] = counts, findings
                print(f"{scenario:<26}{kind:<10}{counts['runs']:>6}"
                      f"{counts['ok']:>6}{counts['raised']:>8}"
                      f"{counts['hung']:>6}{counts['explained']:>11}"
                      f"{counts['stuck']:>7}{counts['crashed']:>9}"
                      f"{len(findings):>10}", flush=True)
                for finding in findings[:5]:
                    print(f"    K={finding['k']}: {finding['outcome']} "
                          f"{finding['leaks'] or ''} {finding['events']}")
    if args.json:
        print(json.dumps({f"{s}/{k}": {"counts": c, "findings": f}
                          for (s, k), (c, f) in results.items()}))


if __name__ == "__main__":
    main()
