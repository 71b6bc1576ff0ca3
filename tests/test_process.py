"""Parity tests: signals, subprocesses and pipes on both loops."""
import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import casyncio
from casyncio import _casyncio

PIPE = asyncio.subprocess.PIPE
PY = sys.executable


def run(loop, coro, timeout=60):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


# ---- signals ---------------------------------------------------------------

@pytest.mark.main_interpreter
def test_signal_handler_runs_as_callback_and_wakes_the_loop(loop):
    seen = []

    def handler(*args):
        seen.append((args, asyncio.get_running_loop() is loop))
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler, "a", 1)
    # The loop sleeps on a far timer; only the signal can wake it.
    loop.call_later(30, loop.stop)
    threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1)).start()
    loop.run_forever()
    assert seen == [(("a", 1), True)]
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


@pytest.mark.main_interpreter
def test_remove_sigint_handler_restores_default_int_handler(loop):
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    assert loop.remove_signal_handler(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.main_interpreter
def test_replacing_a_handler_keeps_only_the_new_one(loop):
    calls = []
    loop.add_signal_handler(signal.SIGUSR2, calls.append, "old")
    loop.add_signal_handler(signal.SIGUSR2, calls.append, "new")
    os.kill(os.getpid(), signal.SIGUSR2)
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    loop.remove_signal_handler(signal.SIGUSR2)
    assert calls == ["new"]


@pytest.mark.main_interpreter
@pytest.mark.parametrize("sig, callback, exc, message", [
    (signal.SIGKILL, lambda: None, RuntimeError, "sig 9 cannot be caught"),
    (signal.SIGSTOP, lambda: None, RuntimeError, "sig 19 cannot be caught"),
    (0, lambda: None, ValueError, "invalid signal number 0"),
    (1000, lambda: None, ValueError, "invalid signal number 1000"),
    ("x", lambda: None, TypeError, "sig must be an int, not 'x'"),
])
def test_add_signal_handler_errors(loop, sig, callback, exc, message):
    with pytest.raises(exc) as info:
        loop.add_signal_handler(sig, callback)
    assert str(info.value) == message
    assert not loop._signal_handlers


def test_coroutine_function_is_refused(loop):
    async def handler():
        pass
    with pytest.raises(TypeError, match="coroutines cannot be used with "
                                        "add_signal_handler"):
        loop.add_signal_handler(signal.SIGUSR1, handler)


def test_signal_handler_outside_main_thread(loop):
    errors = []

    def other_thread():
        try:
            loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        except Exception as exc:
            errors.append(exc)
    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert [type(e) for e in errors] == [RuntimeError]
    assert "main thread" in str(errors[0])


def test_closed_loop_refuses_handlers(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)


@pytest.mark.main_interpreter
def test_close_removes_handlers_and_wakeup_fd(loop):
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.set_wakeup_fd(-1) == -1


@pytest.mark.main_interpreter
def test_signal_storm_while_callbacks_run(loop):
    """Signals sent as fast as a thread can while the loop is busy: the
    handler keeps running as a callback and the loop stays consistent.
    Fewer signals than the wake-up pipe holds bytes: a full pipe makes
    Python print a warning. (Stdlib's self-pipe is a socketpair, which
    fills after a few hundred signals: it warns here, casyncio does not.)"""
    count = 0
    busy = 0

    def handler():
        nonlocal count
        count += 1

    def spin():
        nonlocal busy
        busy += 1
        if busy < 20000:
            loop.call_soon(spin)
        else:
            spun.set_result(None)
    spun = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, handler)
    stop = threading.Event()

    def storm():
        for _ in range(20000):
            if stop.is_set():
                break
            os.kill(os.getpid(), signal.SIGUSR1)
    t = threading.Thread(target=storm)
    t.start()
    try:
        loop.call_soon(spin)
        run(loop, spun)
    finally:
        stop.set()
        t.join()
    run(loop, asyncio.sleep(0.05))
    loop.remove_signal_handler(signal.SIGUSR1)
    assert busy == 20000 and count > 0


SIGINT_SCRIPT = textwrap.dedent("""
    import asyncio, os, signal, sys
    sys.path[:0] = {path!r}
    import casyncio
    factory = {factory}
    state = []
    async def main():
        asyncio.get_running_loop().call_later(
            0.05, os.kill, os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            state.append("cancelled")
            raise
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
    except KeyboardInterrupt:
        state.append("KeyboardInterrupt")
    print(state)
""")


@pytest.mark.parametrize("factory", ["asyncio.SelectorEventLoop",
                                     "casyncio.new_event_loop"])
def test_ctrl_c_in_runner_cancels_the_main_task(factory):
    script = SIGINT_SCRIPT.format(path=sys.path, factory=factory)
    out = subprocess.run([PY, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "['cancelled', 'KeyboardInterrupt']", \
        out.stderr


# ---- subprocesses ----------------------------------------------------------

def test_large_communicate_both_directions(loop):
    data = os.urandom(4 * 1024 * 1024)

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import sys; d = sys.stdin.buffer.read(); "
            "sys.stdout.buffer.write(d[::-1]); "
            "sys.stderr.buffer.write(d[:1000])",
            stdin=PIPE, stdout=PIPE, stderr=PIPE)
        return await proc.communicate(data), proc.returncode
    (out, err), code = run(loop, main())
    assert out == data[::-1] and err == data[:1000] and code == 0


def test_exit_code_shell_and_killed_child(loop):
    async def main():
        exited = await asyncio.create_subprocess_shell("exit 7")
        killed = await asyncio.create_subprocess_exec(
            PY, "-c", "import time; time.sleep(30)")
        killed.kill()
        return await exited.wait(), await killed.wait()
    assert run(loop, main()) == (7, -signal.SIGKILL)


def test_child_closing_stdout_early(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import os, time; os.write(1, b'bye'); os.close(1); "
            "time.sleep(0.2)", stdout=PIPE)
        data = await proc.stdout.read()
        running = proc.returncode
        return data, running, await proc.wait()
    assert run(loop, main()) == (b"bye", None, 0)


def test_send_signal_terminate_and_returncode(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import sys, time; print('ready', flush=True); "
            "time.sleep(30)", stdout=PIPE)
        await proc.stdout.readline()
        proc.send_signal(signal.SIGUSR1)
        code = await proc.wait()
        if sys.version_info < (3, 14):
            with pytest.raises(ProcessLookupError):
                proc.terminate()
        # 3.14's wait() returns as soon as the process exits (gh-119710),
        # which may be before its pipe has closed: terminate() then
        # raises or not depending on that race, on both loops.
        return code
    assert run(loop, main()) == -signal.SIGUSR1


@pytest.mark.skipif(sys.version_info < (3, 14),
                    reason="3.14 wakes wait() at the exit (gh-119710)")
def test_wait_returns_at_exit_while_a_grandchild_holds_the_pipe(loop):
    code = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
            "\"import sys; sys.stdout.write('ready'); sys.stdout.flush(); "
            "sys.stdin.read()\"])")

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", code, stdin=PIPE, stdout=PIPE)
        try:
            waiting = asyncio.ensure_future(proc.wait())
            await proc.stdout.readexactly(5)
            proc.kill()
            return await asyncio.wait_for(waiting, 10)
        finally:
            proc.stdin.close()  # the grandchild exits
            await proc.stdout.read()
    assert run(loop, main()) == -signal.SIGKILL


def test_two_hundred_concurrent_subprocesses(loop):
    async def one(i):
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", f"echo {i}", stdout=PIPE)
        out, _ = await proc.communicate()
        return int(out), proc.returncode

    async def main():
        return await asyncio.gather(*(one(i) for i in range(200)))
    assert run(loop, main(), timeout=120) == [(i, 0) for i in range(200)]


def test_redirections_cwd_env_and_pass_fds(loop, tmp_path):
    r, w = os.pipe()

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import os, sys; print(os.getcwd(), os.environ['X']); "
            f"os.write({w}, b'fd'); sys.stderr.write('err')",
            stdin=subprocess.DEVNULL, stdout=PIPE, stderr=subprocess.STDOUT,
            cwd=tmp_path, env={"X": "y"}, pass_fds=(w,))
        return await proc.communicate()
    try:
        out, err = run(loop, main())
        assert out == f"{tmp_path} y\nerr".encode() and err is None
        assert os.read(r, 10) == b"fd"
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("program, exc", [
    ("/nonexistent/program", FileNotFoundError),
    ("/dev/null", PermissionError),
])
def test_exec_failure_raises_from_the_caller(loop, program, exc):
    with pytest.raises(exc):
        run(loop, asyncio.create_subprocess_exec(program, stdout=PIPE))


@pytest.mark.parametrize("kwargs, message", [
    ({"text": True}, "text must be False"),
    ({"universal_newlines": True}, "universal_newlines must be False"),
    ({"encoding": "utf-8"}, "encoding must be None"),
    ({"bufsize": 1}, "bufsize must be 0"),
])
def test_text_mode_arguments_are_refused(loop, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run(loop, asyncio.create_subprocess_exec(PY, "-c", "", **kwargs))


def test_subprocess_protocol_callback_order(loop):
    events = []
    done = loop.create_future()

    class Proto(asyncio.SubprocessProtocol):
        def connection_made(self, transport):
            events.append("made")

        def pipe_data_received(self, fd, data):
            events.append(("data", fd, data))

        def pipe_connection_lost(self, fd, exc):
            events.append(("lost", fd, exc))

        def process_exited(self):
            events.append("exited")

        def connection_lost(self, exc):
            events.append(("connection_lost", exc))
            done.set_result(None)

    async def main():
        transport, _ = await loop.subprocess_exec(
            Proto, PY, "-c", "print('hi')", stdin=None, stderr=None)
        assert isinstance(transport, asyncio.SubprocessTransport)
        assert transport.get_pid() > 0
        assert transport.get_pipe_transport(1) is not None
        assert transport.get_pipe_transport(0) is None
        await done
        code = transport.get_returncode()
        transport.close()
        return code
    assert run(loop, main()) == 0
    data = [e for e in events if e[0] == "data"]
    assert b"".join(e[2] for e in data) == b"hi\n"
    assert {e[1] for e in data} == {1}
    others = [e for e in events if e[0] != "data"]
    # pipe_connection_lost and process_exited may come in either order.
    assert others[0] == "made" and others[-1] == ("connection_lost", None)
    assert sorted(others[1:-1], key=str) == [("lost", 1, None), "exited"]
    assert events.index(("lost", 1, None)) > events.index(data[-1])


def test_subprocess_transport_api(loop):
    class Proto(asyncio.SubprocessProtocol):
        def __init__(self):
            self.lost = loop.create_future()

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        transport, proto = await loop.subprocess_exec(
            Proto, PY, "-c", "import time; time.sleep(30)", stdout=PIPE,
            stderr=subprocess.DEVNULL)
        pid = transport.get_pid()
        assert repr(transport).endswith(
            f" pid={pid} running stdin={transport.get_pipe_transport(0)!r} "
            f"stdout={transport.get_pipe_transport(1)!r}>")
        assert [transport.get_pipe_transport(fd) is None
                for fd in (0, 1, 2, 3, "1")] == [False, False, True, True,
                                                 True]
        assert transport.get_extra_info("subprocess").pid == pid
        assert transport.get_returncode() is None
        other = asyncio.SubprocessProtocol()
        transport.set_protocol(other)
        assert transport.get_protocol() is other
        transport.set_protocol(proto)
        waiter = transport._wait()
        transport.close()  # kills the running child
        assert transport.is_closing()
        transport.close()
        code = await waiter
        assert await proto.lost is None
        assert "closed" in repr(transport) and f"returncode={code}" in repr(
            transport)
        assert await transport._wait() == code == transport.get_returncode()
        with pytest.raises(ProcessLookupError):
            transport.send_signal(signal.SIGTERM)
        return code
    assert run(loop, main()) == -signal.SIGKILL


def test_signal_between_exit_and_connection_lost_is_ignored(loop):
    """The child has exited but its stdout is still open (a grandchild
    holds it): the transport still has the process and must not raise."""
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", "sleep 1 & exit 3", stdout=PIPE)
        while proc.returncode is None:
            await asyncio.sleep(0.01)
        proc.terminate()
        proc.kill()
        out, _ = await proc.communicate()
        return out, proc.returncode
    assert run(loop, main()) == (b"", 3)


def test_unclosed_subprocess_transport_warns(loop):
    async def main():
        transport, _ = await loop.subprocess_exec(
            asyncio.SubprocessProtocol, PY, "-c", "")
        await transport._wait()
        return transport
    transport = run(loop, main())
    with pytest.warns(ResourceWarning, match="unclosed transport <"):
        del transport
        gc.collect()


def test_subprocess_stdin_flow_control_reaches_the_protocol(loop):
    """A child that does not read: writes to its stdin pipe pause the
    subprocess protocol, and reading resumes it."""
    class Proto(asyncio.SubprocessProtocol):
        def __init__(self):
            self.calls = []
            self.lost = loop.create_future()

        def pause_writing(self):
            self.calls.append("pause")

        def resume_writing(self):
            self.calls.append("resume")

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        transport, proto = await loop.subprocess_exec(
            Proto, PY, "-c", "import sys, time; time.sleep(0.3); "
            "sys.stdin.buffer.read()", stdin=PIPE, stdout=None)
        transport.get_pipe_transport(0).write(b"x" * (1 << 20))
        paused = list(proto.calls)
        transport.get_pipe_transport(0).write_eof()
        await proto.lost
        transport.close()
        return paused, proto.calls
    assert run(loop, main()) == (["pause"], ["pause", "resume"])


def test_replaced_connect_read_pipe_is_used_for_the_pipes(loop):
    """asyncio's own tests patch connect_read_pipe on the loop; stdlib
    connects a child's pipes through it, so casyncio does too."""
    used = []
    original = loop.connect_read_pipe

    async def connect_read_pipe(*args, **kwargs):
        result = await original(*args, **kwargs)
        used.append(result[0])
        return result
    loop.connect_read_pipe = connect_read_pipe

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "print('x')", stdout=PIPE)
        assert proc._transport.get_pipe_transport(1) is used[0]
        return await proc.communicate()
    try:
        assert run(loop, main()) == (b"x\n", None)
    finally:
        del loop.connect_read_pipe


def test_subprocess_debug_logs(loop, caplog):
    loop.set_debug(True)

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", "")
        await proc.wait()
        transport, _ = await loop.subprocess_exec(
            asyncio.SubprocessProtocol, PY, "-c", "import time; "
            "time.sleep(30)")
        transport.close()
        await transport._wait()
        return proc.pid
    with caplog.at_level("DEBUG", logger="asyncio"):
        pid = run(loop, main())
    messages = [r.getMessage() for r in caplog.records]
    assert f"process {PY!r} created: pid {pid}" in messages
    assert any(m.endswith(f" pid={pid} returncode=0> exited with return "
                          "code 0") for m in messages), messages
    assert any(m.startswith("Close running child process: kill <")
               for m in messages), messages


def test_closing_the_loop_leaves_no_zombie(loop_factory):
    """casyncio reaps a child still running when its loop closes."""
    loop = loop_factory()
    proc = loop.run_until_complete(asyncio.create_subprocess_exec(
        PY, "-c", "import time; time.sleep(0.2)"))
    loop.close()
    # Stdlib's threaded watcher (3.11) also reaps; its pidfd watcher
    # (3.12+) leaves that to whoever calls waitpid.
    if loop_factory is casyncio.new_event_loop:
        for _ in range(200):
            if not os.path.exists(f"/proc/{proc.pid}"):
                break
            threading.Event().wait(0.02)
        assert not os.path.exists(f"/proc/{proc.pid}")
    proc._transport.close()


@pytest.fixture
def thread_fallback():
    """Children watched by the waiter thread instead of a pidfd."""
    _casyncio._set_pidfd_enabled(False)
    yield
    _casyncio._set_pidfd_enabled(True)


def test_exit_detection_without_pidfd(thread_fallback):
    async def main():
        procs = [await asyncio.create_subprocess_exec(
            "sh", "-c", f"exit {i}") for i in range(20)]
        return [await p.wait() for p in procs]
    with asyncio.Runner(loop_factory=casyncio.new_event_loop) as runner:
        assert runner.run(main()) == list(range(20))


# ---- pipes -----------------------------------------------------------------

def test_read_and_write_pipe_transports(loop):
    async def main():
        r, w = os.pipe()
        reader = asyncio.StreamReader()
        rtransport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(r, "rb"))
        wtransport, wproto = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(w, "wb"))
        assert isinstance(rtransport, asyncio.ReadTransport)
        assert isinstance(wtransport, asyncio.WriteTransport)
        assert wtransport.can_write_eof()
        wtransport.write(b"x" * 300000)
        wtransport.write_eof()
        data = await reader.read()
        assert wtransport.is_closing()
        return len(data)
    assert run(loop, main()) == 300000


def test_write_pipe_notices_the_reader_closing(loop):
    lost = loop.create_future()

    class Proto(asyncio.Protocol):
        def connection_lost(self, exc):
            lost.set_result(exc)

    async def main():
        r, w = os.pipe()
        transport, _ = await loop.connect_write_pipe(Proto,
                                                     os.fdopen(w, "wb"))
        os.close(r)
        exc = await lost
        transport.write(b"dropped")  # after close: dropped, not raised
        return exc
    assert run(loop, main()) is None


def test_pipe_transport_refuses_regular_files(loop, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"")
    with open(path, "rb") as f, pytest.raises(
            ValueError, match="Pipe transport is"):
        run(loop, loop.connect_read_pipe(asyncio.Protocol, f))


# ---- fork ------------------------------------------------------------------

@pytest.mark.main_interpreter
def test_fork_inside_a_running_loop_resets_it_as_stdlib(loop):
    async def main():
        pid = os.fork()
        if pid == 0:
            os._exit(10 + (asyncio._get_running_loop() is None))
        return os.waitstatus_to_exitcode(
            await loop.run_in_executor(None, lambda: os.waitpid(pid, 0)[1]))
    # 3.12+ reset the running loop in the child (asyncio's fork hook); 3.11
    # tells the child from the parent by its pid.
    assert run(loop, main()) == 11


@pytest.mark.main_interpreter
def test_forked_child_gets_a_poller_of_its_own(loop_factory):
    """The child unregisters an fd and runs the loop; the parent's loop must
    not notice. (Stdlib's loop shares its epoll object with the child, so
    there the child's remove_reader unregisters the parent's fd too: a
    documented difference.)"""
    loop = loop_factory()
    r, w = os.pipe()
    got = []
    loop.add_reader(r, lambda: (got.append(os.read(r, 100)), loop.stop()))
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            loop.remove_reader(r)
            cr, cw = os.pipe()
            loop.add_reader(cr, loop.stop)
            os.write(cw, b"x")
            loop.run_forever()
            code = 0 if os.read(cr, 1) == b"x" else 2
        finally:
            os._exit(code)
    status = os.waitpid(pid, 0)[1]
    os.write(w, b"parent")
    handle = loop.call_later(2, loop.stop)
    loop.run_forever()
    handle.cancel()
    loop.close()
    os.close(r)
    os.close(w)
    assert os.waitstatus_to_exitcode(status) == 0
    if loop_factory is casyncio.new_event_loop:
        assert got == [b"parent"]


@pytest.mark.main_interpreter
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_run_in_process_pool_executor(loop, method):
    import concurrent.futures
    import multiprocessing
    context = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as ex:
        async def main():
            return await asyncio.gather(
                *(loop.run_in_executor(ex, pow, 2, i) for i in range(8)))
        assert run(loop, main()) == [2 ** i for i in range(8)]


def test_write_pipe_flow_control(loop):
    events = []

    class Proto(asyncio.Protocol):
        def pause_writing(self):
            events.append(("pause", transport.get_write_buffer_size() > 1000))

        def resume_writing(self):
            events.append(("resume", transport.get_write_buffer_size()
                           <= 250))

    async def main():
        nonlocal transport
        r, w = os.pipe()
        transport, _ = await loop.connect_write_pipe(Proto, os.fdopen(w, "wb"))
        transport.set_write_buffer_limits(high=1000)
        assert transport.get_write_buffer_limits() == (250, 1000)
        data = os.urandom(1 << 20)
        transport.write(data)
        assert events == [("pause", True)]
        received = bytearray()
        os.set_blocking(r, False)
        while len(received) < len(data):
            await asyncio.sleep(0)
            try:
                received += os.read(r, 1 << 16)
            except BlockingIOError:
                pass
        await asyncio.sleep(0)
        transport.close()
        os.close(r)
        return bytes(received) == data
    transport = None
    assert run(loop, main())
    assert events == [("pause", True), ("resume", True)]


def test_write_pipe_reader_closing_with_data_queued(loop):
    lost = loop.create_future()

    class Proto(asyncio.Protocol):
        def connection_lost(self, exc):
            lost.set_result(exc)

    async def main():
        r, w = os.pipe()
        transport, _ = await loop.connect_write_pipe(Proto, os.fdopen(w, "wb"))
        transport.write(b"x" * (1 << 20))  # more than the pipe holds
        assert transport.get_write_buffer_size() > 0
        os.close(r)
        return await lost
    assert isinstance(run(loop, main()), BrokenPipeError)


def test_read_pipe_pause_resume_and_eof(loop):
    got = []
    done = loop.create_future()

    class Proto(asyncio.Protocol):
        def data_received(self, data):
            got.append(data)

        def eof_received(self):
            got.append("eof")

        def connection_lost(self, exc):
            done.set_result(exc)

    async def main():
        r, w = os.pipe()
        transport, _ = await loop.connect_read_pipe(Proto, os.fdopen(r, "rb"))
        assert transport.is_reading()
        transport.pause_reading()
        assert not transport.is_reading()
        os.write(w, b"held")
        await asyncio.sleep(0.05)
        assert got == []
        transport.resume_reading()
        os.close(w)
        exc = await done
        assert transport.is_closing() and not transport.is_reading()
        return exc
    assert run(loop, main()) is None
    assert got == [b"held", "eof"]


def test_write_pipe_refuses_text_as_stdlib_asserts(loop):
    async def main():
        r, w = os.pipe()
        transport, _ = await loop.connect_write_pipe(asyncio.Protocol,
                                                     os.fdopen(w, "wb"))
        try:
            with pytest.raises(AssertionError, match="'text'"):
                transport.write("text")
        finally:
            transport.close()
            os.close(r)
    run(loop, main())


@pytest.mark.parametrize("side", ["read", "write"])
def test_connect_pipe_logs_in_debug_mode(loop, caplog, side):
    async def main():
        r, w = os.pipe()
        pipe = os.fdopen(r if side == "read" else w,
                         "rb" if side == "read" else "wb")
        other = w if side == "read" else r
        connect = getattr(loop, f"connect_{side}_pipe")
        transport, _ = await connect(asyncio.Protocol, pipe)
        transport.close()
        os.close(other)
        await asyncio.sleep(0)

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_until_complete(main())
    logged = [r.msg for r in caplog.records if " pipe %r connected" in r.msg]
    assert logged == ([f"{side.capitalize()} pipe %r connected: (%r, %r)"]
                      if loop.get_debug() else [])


@pytest.mark.parametrize("side", ["read", "write"])
def test_connect_pipe_failure_and_coroutine_protocol(loop, tmp_path, side):
    """A file that is no pipe fails from the awaited call, as stdlib's
    transport does; the call is a coroutine that warns if never awaited."""
    connect = getattr(loop, f"connect_{side}_pipe")
    path = tmp_path / "file"
    path.write_bytes(b"")
    with open(path, "rb" if side == "read" else "wb") as f:
        with pytest.raises(ValueError, match="Pipe transport is"):
            loop.run_until_complete(connect(asyncio.Protocol, f))
    coro = connect(asyncio.Protocol, None)
    assert asyncio.iscoroutine(coro)
    with pytest.warns(RuntimeWarning, match="was never awaited"):
        del coro
        gc.collect()
