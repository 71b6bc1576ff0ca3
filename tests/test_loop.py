"""Parity tests for the loop's non-network API: scheduling, running,
closing, errors, exception handlers, fd watchers, executors, async
generators. Each runs on stdlib asyncio and casyncio (see conftest.py)."""
import asyncio
import contextvars
import logging
import os
import socket
import sys
import threading
import time

import pytest

PY312 = sys.version_info >= (3, 12)


def run_briefly(loop, n=1):
    for _ in range(n):
        loop.call_soon(loop.stop)
        loop.run_forever()


# ---- call_soon, call_later, call_at -----------------------------------------

def test_call_soon_runs_in_fifo_order_with_args(loop):
    calls = []
    for i in range(5):
        loop.call_soon(calls.append, i)
    loop.call_soon(lambda *a: calls.append(a), 1, "x", None)
    run_briefly(loop)
    assert calls == [0, 1, 2, 3, 4, (1, "x", None)]


def test_callbacks_added_while_running_wait_for_next_iteration(loop):
    calls = []

    def first():
        calls.append("first")
        loop.call_soon(calls.append, "nested")
        loop.stop()

    loop.call_soon(first)
    loop.call_soon(calls.append, "second")
    loop.run_forever()
    assert calls == ["first", "second"]
    run_briefly(loop)
    assert calls == ["first", "second", "nested"]


def test_call_soon_context(loop):
    var = contextvars.ContextVar("var", default="default")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    seen = []
    handle = loop.call_soon(lambda: seen.append(var.get()), context=ctx)
    var.set("outer")
    loop.call_soon(lambda: seen.append(var.get()))
    run_briefly(loop)
    assert seen == ["in ctx", "outer"]
    if PY312:  # Handle.get_context() is new in 3.12
        assert handle.get_context() is ctx


def test_cancelled_handle_does_not_run(loop):
    calls = []
    h = loop.call_soon(calls.append, 1)
    assert not h.cancelled()
    h.cancel()
    h.cancel()
    assert h.cancelled()
    run_briefly(loop)
    assert calls == []


def test_timers_run_in_deadline_order_and_ties_in_call_order(loop):
    calls = []
    when = loop.time() + 0.02
    for i in range(5):
        loop.call_at(when, calls.append, i)
    loop.call_at(when - 0.01, calls.append, "early")
    loop.call_later(0.03, loop.stop)
    loop.run_forever()
    if loop.kind == "casyncio":
        assert calls == ["early", 0, 1, 2, 3, 4]
    else:  # heapq leaves the order of equal deadlines undefined
        assert calls[0] == "early" and sorted(calls[1:]) == [0, 1, 2, 3, 4]


def test_call_later_is_never_early(loop):
    fired = []
    start = loop.time()
    loop.call_later(0.05, lambda: fired.append(loop.time()))
    loop.call_later(0.06, loop.stop)
    loop.run_forever()
    assert fired[0] - start >= 0.05


def test_timer_handle_when_and_cancel(loop):
    calls = []
    t = loop.call_at(loop.time() + 0.01, calls.append, 1)
    assert isinstance(t.when(), float)
    t.cancel()
    assert t.cancelled()
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert calls == []


def test_negative_delay_runs_on_next_iteration(loop):
    calls = []
    loop.call_later(-5, calls.append, "neg")
    run_briefly(loop)
    assert calls == ["neg"]


@pytest.mark.parametrize("method,args,message", [
    ("call_later", (None, print), "delay must not be None"),
    ("call_at", (None, print), "when cannot be None"),
])
def test_none_delay_is_a_type_error(loop, method, args, message):
    with pytest.raises(TypeError, match=message):
        getattr(loop, method)(*args)


def test_loop_time_is_monotonic_clock(loop):
    before = time.monotonic()
    now = loop.time()
    after = time.monotonic()
    assert before <= now <= after


def test_handle_repr(loop):
    def cb(*args):
        pass
    name = cb.__qualname__
    h = loop.call_soon(cb)
    r = repr(h)
    assert r.startswith(f"<Handle {name}() at ") and r.endswith(">")
    h.cancel()
    assert repr(h).startswith("<Handle cancelled")
    t = loop.call_at(1234.5, cb, 7)
    # 3.13 shows the arguments in debug mode only.
    shown = "7" if loop.get_debug() or sys.version_info < (3, 13) else ""
    assert repr(t).startswith(f"<TimerHandle when=1234.5 {name}({shown}) at ")
    t.cancel()


def test_timer_when_gives_back_call_ats_int(loop):
    timer = loop.call_at(5, print)
    assert timer.when() == 5 and type(timer.when()) is int
    assert repr(timer).startswith("<TimerHandle when=5 print()")
    assert type(loop.call_at(5.5, print).when()) is float
    assert type(loop.call_later(1, print).when()) is float


def test_timers_follow_a_patched_or_overridden_time(loop):
    # Time-faking test tools patch loop.time; stdlib's timers read it.
    from unittest import mock
    now = [1000.0]
    fired = []
    with mock.patch.object(loop, "time", lambda: now[0]):
        timer = loop.call_later(10, fired.append, "late")
        assert timer.when() == 1010.0
        run_briefly(loop)
        assert fired == []
        now[0] = 1011.0
        run_briefly(loop)
        assert fired == ["late"]
    assert abs(loop.time() - time.monotonic()) < 1  # restored

    class FixedTime(type(loop)):
        def time(self):
            return 5.0
    other = FixedTime()
    try:
        assert other.call_later(1, print).when() == 6.0
    finally:
        other.close()


# ---- running and stopping ------------------------------------------------------

def test_run_until_complete_returns_result_and_raises_exception(loop):
    async def ok():
        await asyncio.sleep(0)
        return 42

    async def bad():
        raise ValueError("boom")

    assert loop.run_until_complete(ok()) == 42
    with pytest.raises(ValueError, match="boom"):
        loop.run_until_complete(bad())
    fut = loop.create_future()
    loop.call_soon(fut.set_result, "f")
    assert loop.run_until_complete(fut) == "f"


def test_run_until_complete_stopped_early(loop):
    async def forever():
        loop.stop()
        await asyncio.sleep(10)

    task = loop.create_task(forever())
    with pytest.raises(RuntimeError,
                       match=r"^Event loop stopped before Future completed\.$"):
        loop.run_until_complete(task)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)


def test_running_state_and_nested_run_errors(loop):
    seen = {}

    # stdlib 3.13's run_forever runs its cleanup even when its set-up
    # refused to start, which un-marks the outer loop as running and hangs
    # it; casyncio does not copy that bug, so stdlib 3.13 skips the call.
    stdlib_313 = loop.kind == "stdlib" and sys.version_info[:2] == (3, 13)

    async def main():
        seen["running"] = loop.is_running()
        if not stdlib_313:
            with pytest.raises(RuntimeError,
                               match="^This event loop is already running$"):
                loop.run_forever()
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError,
                           match="^This event loop is already running$"):
            loop.run_until_complete(coro)
        coro.close()
        with pytest.raises(RuntimeError,
                           match="^Cannot close a running event loop$"):
            loop.close()
        seen["running_loop"] = asyncio.get_running_loop()
        seen["event_loop"] = asyncio.get_event_loop()

    assert not loop.is_running()
    loop.run_until_complete(main())
    assert seen == {"running": True, "running_loop": loop,
                    "event_loop": loop}
    assert not loop.is_running()


def test_another_running_loop_is_refused(loop, loop_factory):
    other = loop_factory()

    async def main():
        with pytest.raises(RuntimeError, match="^Cannot run the event loop "
                           "while another loop is running$"):
            other.run_forever()

    try:
        loop.run_until_complete(main())
    finally:
        other.close()


def test_closed_loop_errors(loop):
    loop.close()
    loop.close()  # idempotent
    assert loop.is_closed()
    for call in (lambda: loop.call_soon(print),
                 lambda: loop.call_later(1, print),
                 lambda: loop.call_at(1, print),
                 lambda: loop.call_soon_threadsafe(print),
                 loop.run_forever,
                 lambda: loop.run_in_executor(None, print),
                 lambda: loop.add_reader(0, print)):
        with pytest.raises(RuntimeError, match="^Event loop is closed$"):
            call()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.run_until_complete(coro)
    coro.close()
    assert loop.remove_reader(0) is False


def test_close_drops_pending_callbacks(loop):
    calls = []
    loop.call_soon(calls.append, 1)
    loop.call_later(0.001, calls.append, 2)
    loop.close()
    assert calls == []


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_exit_exceptions_leave_run_forever(loop, exc_type):
    calls = []

    def boom():
        raise exc_type()

    loop.call_soon(boom)
    loop.call_soon(calls.append, "after")
    with pytest.raises(exc_type):
        loop.run_forever()
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None
    run_briefly(loop)  # the loop is reusable and kept the queued callback
    assert calls == ["after"]


def test_stop_then_run_forever_runs_one_iteration(loop):
    calls = []
    loop.stop()
    loop.call_soon(calls.append, 1)
    loop.run_forever()
    assert calls == [1]


def test_call_soon_threadsafe_wakes_the_loop(loop):
    result = []

    def worker():
        time.sleep(0.05)
        loop.call_soon_threadsafe(result.append, "from thread")
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=worker)
    t.start()
    loop.call_later(5, loop.stop)  # a bound, if the wake-up were lost
    start = time.monotonic()
    loop.run_forever()
    t.join()
    assert result == ["from thread"]
    assert time.monotonic() - start < 4


PY314 = sys.version_info >= (3, 14)


@pytest.mark.skipif(not PY314, reason="3.14's _ThreadSafeHandle")
def test_call_soon_threadsafe_handle_is_stdlibs_thread_safe_handle(loop):
    from asyncio import events
    handle = loop.call_soon_threadsafe(print)
    assert type(handle) is events._ThreadSafeHandle
    assert repr(handle).startswith("<_ThreadSafeHandle print()")
    handle.cancel()
    run_briefly(loop)


@pytest.mark.skipif(not PY314, reason="3.14's _ThreadSafeHandle lock")
def test_call_soon_threadsafe_cancel_waits_for_running_callback(loop):
    events = []
    started = threading.Event()

    def callback():
        started.set()
        time.sleep(0.2)
        events.append("callback done")

    def other_thread():
        handle = loop.call_soon_threadsafe(callback)
        started.wait()
        handle.cancel()  # blocks until the callback has returned
        events.append(("cancelled", handle.cancelled()))
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=other_thread)
    t.start()
    loop.call_later(5, loop.stop)
    loop.run_forever()
    t.join()
    assert events == ["callback done", ("cancelled", True)]


def test_call_soon_threadsafe_cancelled_from_other_thread_never_runs(loop):
    ran = []
    gate = threading.Event()
    handles = []

    def other_thread():
        handles.append(loop.call_soon_threadsafe(ran.append, 1))
        handles[0].cancel()
        gate.set()
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(gate.wait, 5)  # the loop waits until it is cancelled
    t = threading.Thread(target=other_thread)
    t.start()
    loop.run_forever()
    t.join()
    assert ran == [] and handles[0].cancelled()


def test_call_soon_threadsafe_callback_error_is_reported(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def fail():
        raise ValueError("boom")

    handle = loop.call_soon_threadsafe(fail)
    run_briefly(loop)
    assert len(contexts) == 1
    ctx = contexts[0]
    assert ctx["message"].startswith("Exception in callback ")
    assert "fail()" in ctx["message"]
    assert isinstance(ctx["exception"], ValueError)
    assert ctx["handle"] is handle
    assert ("source_traceback" in ctx) == loop.get_debug()
    if loop.get_debug():
        assert ctx["source_traceback"][-1].name == (
            "test_call_soon_threadsafe_callback_error_is_reported")


# ---- argument checking -----------------------------------------------------------

def test_debug_mode_checks_callbacks(loop):
    async def coro_fn():
        pass

    for method in ("call_soon", "call_soon_threadsafe"):
        meth = getattr(loop, method)
        if loop.get_debug():
            with pytest.raises(TypeError, match=f"^coroutines cannot be used "
                               rf"with {method}\(\)$"):
                meth(coro_fn)
            with pytest.raises(TypeError, match=rf"^a callable object was "
                               rf"expected by {method}\(\), got 1$"):
                meth(1)
        else:
            meth(1).cancel()  # no check outside debug mode, as stdlib


def test_debug_mode_rejects_call_soon_from_other_thread(loop):
    errors = []

    def worker():
        try:
            loop.call_soon(print)
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(threading.Thread(target=worker).start)
    loop.run_forever()
    if loop.get_debug():
        assert errors == ["Non-thread-safe operation invoked on an event "
                          "loop other than the current one"]
    else:
        assert errors == []
    run_briefly(loop)


def test_set_task_factory_rejects_non_callable(loop):
    with pytest.raises(TypeError,
                       match="^task factory must be a callable or None$"):
        loop.set_task_factory(1)


def test_set_exception_handler_rejects_non_callable(loop):
    with pytest.raises(TypeError, match="^A callable object or None is "
                       "expected, got 1$"):
        loop.set_exception_handler(1)


def test_set_default_executor_rejects_other_executors(loop):
    import concurrent.futures
    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        with pytest.raises(TypeError,
                           match="^executor must be ThreadPoolExecutor"):
            loop.set_default_executor(ex)


# ---- tasks and futures ------------------------------------------------------------

def test_create_task_name_context_and_factory(loop):
    var = contextvars.ContextVar("var")
    ctx = contextvars.copy_context()
    ctx.run(var.set, 5)

    async def get():
        return var.get()

    task = loop.create_task(get(), name="job", context=ctx)
    assert task.get_name() == "job"
    assert loop.run_until_complete(task) == 5

    made = []

    def factory(lp, coro, **kwargs):
        t = asyncio.Task(coro, loop=lp, **kwargs)
        made.append(t)
        return t

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory
    task = loop.create_task(get(), name="f", context=ctx)
    assert made == [task] and task.get_name() == "f"
    assert loop.run_until_complete(task) == 5
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None


@pytest.mark.skipif(not PY312, reason="eager tasks are 3.12+")
def test_eager_task_factory(loop):
    order = []

    async def coro():
        order.append("body")

    async def main():
        loop.set_task_factory(asyncio.eager_task_factory)
        t = loop.create_task(coro())
        order.append("after create")
        await t

    loop.run_until_complete(main())
    assert order == ["body", "after create"]


def test_create_future_belongs_to_loop(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    fut.cancel()


def test_create_task_name_is_made_a_str(loop):
    async def coro():
        pass
    task = loop.create_task(coro(), name=("a", 1))
    assert task.get_name() == "('a', 1)"
    loop.set_task_factory(lambda lp, c, **kw: asyncio.Task(c, loop=lp, **kw))
    task2 = loop.create_task(coro(), name=("b", 2))
    assert task2.get_name() == "('b', 2)"
    loop.run_until_complete(asyncio.gather(task, task2))


# ---- exception handling -------------------------------------------------------------

def test_callback_exception_is_logged_like_stdlib(loop, caplog):
    def bad():
        raise ZeroDivisionError("nope")

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(bad)
        run_briefly(loop)
    [record] = caplog.records
    lines = record.getMessage().splitlines()
    assert lines[0].startswith("Exception in callback ")
    assert "bad()" in lines[0]
    assert lines[1].startswith("handle: <Handle ")
    assert record.exc_info[0] is ZeroDivisionError
    if loop.get_debug():
        assert any(line.startswith("source_traceback: Object created at")
                   for line in lines)


def test_custom_exception_handler_receives_context(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append((lp, ctx)))
    assert loop.get_exception_handler() is not None

    def bad():
        raise KeyError("k")

    h = loop.call_soon(bad)
    run_briefly(loop)
    [(lp, ctx)] = contexts
    assert lp is loop
    assert ctx["handle"] is h
    assert isinstance(ctx["exception"], KeyError)
    assert ctx["message"].startswith("Exception in callback ")
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


def test_failing_exception_handler_falls_back_to_default(loop, caplog):
    def handler(lp, ctx):
        raise RuntimeError("handler broke")

    loop.set_exception_handler(handler)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "original"})
    [record] = caplog.records
    assert record.getMessage().splitlines()[0] == \
        "Unhandled error in exception handler"
    assert "context: {'message': 'original'}" in record.getMessage()
    assert record.exc_info[0] is RuntimeError


def test_default_exception_handler_format(loop, caplog):
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.default_exception_handler({"b": 2, "a": "x"})
        loop.call_exception_handler({"message": "msg", "exception":
                                     ValueError("v")})
    first, second = caplog.records
    assert first.getMessage() == \
        "Unhandled exception in event loop\na: 'x'\nb: 2"
    assert not first.exc_info
    assert second.getMessage() == "msg"
    assert second.exc_info[0] is ValueError


def test_exit_exception_from_handler_propagates(loop):
    def handler(lp, ctx):
        raise KeyboardInterrupt

    loop.set_exception_handler(handler)
    loop.call_soon(lambda: 1 / 0)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()


def test_slow_callback_warning_in_debug(loop, caplog):
    loop.slow_callback_duration = 0.01

    def slow():
        time.sleep(0.03)

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.call_soon(slow)
        run_briefly(loop)
    messages = [r.getMessage() for r in caplog.records]
    if loop.get_debug():
        assert len(messages) == 1
        assert messages[0].startswith(
            f"Executing <Handle {slow.__qualname__}() at ")
        assert " took 0.0" in messages[0] and messages[0].endswith(" seconds")
    else:
        assert messages == []


# ---- fd watchers ------------------------------------------------------------------------

def test_add_reader_and_writer_on_socketpair(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    got = []

    def on_readable():
        got.append(b.recv(100))
        loop.stop()

    try:
        loop.add_reader(b.fileno(), on_readable)
        loop.add_writer(a, lambda: (a.send(b"ping"), loop.remove_writer(a)))
        loop.call_later(5, loop.stop)
        loop.run_forever()
        assert got == [b"ping"]
        assert loop.remove_reader(b) is True
        assert loop.remove_reader(b) is False
        assert loop.remove_writer(a) is False
    finally:
        a.close()
        b.close()


def test_add_reader_replaces_previous_reader(loop):
    a, b = socket.socketpair()
    calls = []
    try:
        loop.add_reader(b, calls.append, "old")
        loop.add_reader(b, lambda: (calls.append("new"), b.recv(10)))
        a.send(b"x")
        loop.call_later(0.05, loop.stop)
        loop.run_forever()
        assert calls == ["new"]
        loop.remove_reader(b)
    finally:
        a.close()
        b.close()


def test_add_reader_bad_arguments(loop):
    with pytest.raises(ValueError, match="^Invalid file object: 'x'$"):
        loop.add_reader("x", print)
    with pytest.raises(ValueError, match="^Invalid file descriptor: -1$"):
        loop.add_reader(-1, print)
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as info:
        loop.add_reader(r, print)
    assert info.value.errno == 9  # EBADF, from epoll_ctl as in stdlib


def test_add_reader_works_on_plain_pipe_fd(loop):
    r, w = os.pipe()
    try:
        got = []
        loop.add_reader(r, lambda: (got.append(os.read(r, 10)), loop.stop()))
        os.write(w, b"data")
        loop.call_later(5, loop.stop)
        loop.run_forever()
        assert got == [b"data"]
        loop.remove_reader(r)
    finally:
        os.close(r)
        os.close(w)


def test_reader_that_removes_itself_then_raises_is_reported(loop):
    # Removing the reader cancels its handle, dropping the callback: the
    # report names it as stdlib's does.
    a, b = socket.socketpair()
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def on_readable():
        loop.remove_reader(b)
        loop.stop()
        raise OSError("unexpected")

    try:
        loop.add_reader(b, on_readable)
        a.send(b"x")
        loop.call_later(5, loop.stop)
        loop.run_forever()
    finally:
        a.close()
        b.close()
    assert [ctx["message"] for ctx in contexts] == [
        "Exception in callback None()"]
    assert str(contexts[0]["exception"]) == "unexpected"


def test_remove_reader_and_writer_after_the_socket_closed(loop):
    # anyio closes a socket, then removes its watcher in a done-callback:
    # selectors find the registration by the object's identity.
    a, b = socket.socketpair()
    w, x = socket.socketpair()
    loop.add_reader(a, lambda: None)
    loop.add_writer(w, lambda: None)
    for s in (a, b, w, x):
        s.close()
    assert loop.remove_reader(a) is True
    assert loop.remove_writer(w) is True
    with pytest.raises(ValueError, match="^Invalid file descriptor: -1$"):
        loop.remove_reader(a)  # no longer registered: fileno() decides
    # The fd number, now free, serves a new socket's reader.
    c, d = socket.socketpair()
    fired = []
    try:
        loop.add_reader(c, lambda: (fired.append(c.recv(1)), loop.stop()))
        d.send(b"x")
        loop.call_later(5, loop.stop)
        loop.run_forever()
        assert fired == [b"x"]
        loop.remove_reader(c)
    finally:
        c.close()
        d.close()


# ---- executors and async generators -----------------------------------------------------

def test_run_in_executor_and_shutdown(loop):
    async def main():
        tid = await loop.run_in_executor(None, threading.get_ident)
        assert tid != threading.get_ident()
        await loop.shutdown_default_executor()
        with pytest.raises(RuntimeError,
                           match="^Executor shutdown has been called$"):
            loop.run_in_executor(None, print)

    loop.run_until_complete(main())


def test_run_in_explicit_executor(loop):
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fut = loop.run_in_executor(ex, pow, 2, 10)
        assert isinstance(fut, asyncio.Future)
        assert loop.run_until_complete(fut) == 1024


def test_shutdowns_start_when_awaited(loop):
    # Coroutines in stdlib: a program cancels its tasks, then awaits
    # shutdown_asyncgens(); closing the generators must not race that.
    finalized = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            finalized.append(1)

    gen = agen()

    async def first_item():  # iterated inside the loop, which tracks it
        return await gen.__anext__()
    assert loop.run_until_complete(first_item()) == 1
    shutdown = loop.shutdown_asyncgens()
    executor_shutdown = loop.shutdown_default_executor()
    loop.run_until_complete(asyncio.sleep(0))
    assert finalized == []  # nothing ran before the await
    assert loop.run_until_complete(shutdown) is None
    assert finalized == [1]
    assert loop.run_until_complete(executor_shutdown) is None
    with pytest.raises(TypeError):
        loop.shutdown_default_executor(1, 2)


def test_shutdown_asyncgens_closes_live_generators(loop):
    closed = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    async def main():
        g = agen()
        assert await g.__anext__() == 1
        return g

    g = loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert closed == [True]
    del g


def test_asyncgen_hooks_restored_after_run(loop):
    before = sys.get_asyncgen_hooks()
    seen = []

    async def main():
        seen.append(sys.get_asyncgen_hooks())

    loop.run_until_complete(main())
    assert sys.get_asyncgen_hooks() == before
    assert seen[0].firstiter is not None


def test_debug_flag_and_coroutine_origin_tracking(loop):
    depth = []

    async def main():
        depth.append(sys.get_coroutine_origin_tracking_depth())

    loop.run_until_complete(main())
    assert (depth[0] > 0) == loop.get_debug()
    assert sys.get_coroutine_origin_tracking_depth() == 0


def test_repr_of_loop(loop):
    r = repr(loop)
    assert r.endswith(f" running=False closed=False "
                      f"debug={loop.get_debug()}>")


def test_unclosed_loop_warns(loop_factory):
    lp = loop_factory()
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        del lp
        import gc
        gc.collect()


# ---- introspection ---------------------------------------------------------

SET_UP_COROUTINES = (
    "create_connection", "create_unix_connection", "connect_accepted_socket",
    "create_server", "create_unix_server", "create_datagram_endpoint",
    "connect_read_pipe", "connect_write_pipe", "start_tls", "sendfile",
    "getaddrinfo", "getnameinfo", "shutdown_asyncgens",
    "shutdown_default_executor")


@pytest.mark.parametrize("name", SET_UP_COROUTINES)
def test_set_up_methods_are_coroutine_functions(loop, name):
    import inspect
    from unittest import mock
    method = getattr(loop, name)
    assert inspect.iscoroutinefunction(method)
    if sys.version_info < (3, 14):  # deprecated (and warning) from 3.14
        assert asyncio.iscoroutinefunction(method)
    # autospec (aiohttp's tests patch create_server and friends so) makes
    # an AsyncMock, whose calls are awaitable.
    with mock.patch.object(loop, name, autospec=True) as patched:
        call = getattr(loop, name)(*[None] * required_positional(method))
        assert inspect.isawaitable(call)
        loop.run_until_complete(call)
        assert patched.await_count == 1
    # A wrong argument fails at the call, as with an async def.
    with pytest.raises(TypeError):
        getattr(loop, name)(*[None] * 20)


@pytest.mark.parametrize("name", SET_UP_COROUTINES)
def test_set_up_coroutines_take_this_versions_parameters(loop, name):
    # Each Python adds parameters (all_errors in 3.12, shutdown timeout in
    # 3.12): the names, order and defaults are this interpreter's stdlib's.
    import inspect

    def parameters(method):
        return [(p.name, p.kind, p.default)
                for p in inspect.signature(method).parameters.values()]

    assert parameters(getattr(loop, name)) == parameters(
        getattr(asyncio.SelectorEventLoop, name).__get__(loop))


def required_positional(method):
    import inspect
    return sum(1 for p in inspect.signature(method).parameters.values()
               if p.default is p.empty and p.kind in (
                   p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def test_set_up_coroutine_argument_errors_come_at_await(loop):
    # As from an async def: calling makes a coroutine; the error is raised
    # when it runs.
    coro = loop.create_server(lambda: None, "127.0.0.1", 0, sock=object())
    with pytest.raises(ValueError):
        loop.run_until_complete(coro)
