"""Differential fuzzing: hypothesis generates random programs over the
loop's API, each program runs on stdlib's loop and on casyncio's, and the
two traces must be identical.

A program is a list of steps: callbacks scheduled, cancelled and raising
(time is virtual: loop.time is patched, as users' tests do, and a step
advances it), tasks that sleep, fail, are cancelled and uncancelled,
shield, wait_for and TaskGroup, add_reader/add_writer on socketpairs,
stream transports on both ends of a socketpair (write, writelines,
write_eof, pause/resume reading, write-buffer limits, close, abort),
datagram transports, sock_* round trips and executor hops. After each step
the loop runs until nothing moves. The trace is what ran, in order:
callbacks, protocol methods (bytes received coalesced per protocol, so
that how a stream is cut into reads does not count), task outcomes,
exception-handler calls and the asyncio logger's records, exceptions'
types and messages included.

CI runs a fixed number of examples from a fixed seed (derandomize);
before a release: CASYNCIO_FUZZ_EXAMPLES=5000 CASYNCIO_FUZZ_RANDOM=1.
A difference found becomes a parity test in the module it belongs to.
"""
import asyncio
import inspect
import logging
import os
import re
import socket
import zlib

import pytest

import casyncio
from asyncio import selector_events

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# stdlib's own writelines() before 3.14's (the 3.12.1 and 3.13.0 here)
# neither pauses the protocol nor drops empty chunks; casyncio's does as
# 3.14's does (a documented difference, test_net.py pins it), so there the
# programs use write() only.
STDLIB_WRITELINES_FIXED = "_maybe_pause_protocol" in inspect.getsource(
    selector_events._SelectorSocketTransport.writelines)
EXAMPLES = int(os.environ.get("CASYNCIO_FUZZ_EXAMPLES", "500"))
SETTLE_ROUNDS = 3000  # bounds a step that never goes quiet
QUIET_ROUNDS = 8  # loop iterations without an event: the step is over


def payload(tag, size):
    """Bytes that say who wrote them, so a mix-up shows in the CRC."""
    return (f"<{tag}>".encode() * (size // 4 + 1))[:size]


def describe_exception(exc):
    text = re.sub(r"0x[0-9a-f]+", "0x?", str(exc))
    return f"{type(exc).__name__}: {text}"


def describe_outcome(fut):
    if fut.cancelled():
        return "cancelled"
    exc = fut.exception()
    return describe_exception(exc) if exc is not None else repr(fut.result())


class Recorder(logging.Handler):
    def __init__(self, trace):
        super().__init__(logging.DEBUG)
        self.trace = trace

    def emit(self, record):
        self.trace.event("log", record.levelname,
                         re.sub(r"0x[0-9a-f]+", "0x?", record.getMessage()))


class Trace:
    def __init__(self):
        self.events = []
        self.moves = 0  # every event, coalesced data included

    def event(self, *what):
        self.events.append(what)
        self.moves += 1

    def data(self, who, data):
        self.moves += 1
        last = self.events[-1] if self.events else None
        if last is not None and last[:2] == ("data", who):
            last[2].extend(data)
        else:
            self.events.append(("data", who, bytearray(data)))

    def final(self):
        return [(e[0], e[1], len(e[2]), zlib.crc32(e[2]))
                if e[0] == "data" else e for e in self.events]


class StreamRecorder(asyncio.Protocol):
    def __init__(self, trace, name):
        self.trace, self.name = trace, name

    def connection_made(self, transport):
        self.trace.event("connection_made", self.name)

    def data_received(self, data):
        self.trace.data(self.name, data)

    def eof_received(self):
        self.trace.event("eof_received", self.name)

    def pause_writing(self):
        self.trace.event("pause_writing", self.name)

    def resume_writing(self):
        self.trace.event("resume_writing", self.name)

    def connection_lost(self, exc):
        self.trace.event("connection_lost", self.name,
                         exc and describe_exception(exc))


class DatagramRecorder(asyncio.DatagramProtocol):
    def __init__(self, trace, name):
        self.trace, self.name = trace, name

    def datagram_received(self, data, addr):
        self.trace.event("datagram", self.name, len(data), zlib.crc32(data))

    def error_received(self, exc):
        self.trace.event("error_received", self.name,
                         describe_exception(exc))

    def connection_lost(self, exc):
        self.trace.event("connection_lost", self.name,
                         exc and describe_exception(exc))


class Machine:
    """Runs one program on one loop and keeps its trace."""

    def __init__(self, loop):
        self.loop = loop
        self.trace = Trace()
        self.now = 1000.0
        loop.time = lambda: self.now
        loop.set_exception_handler(self.handler)
        self.handles, self.tasks = [], []
        self.readers = []  # (our end, peer) with a reader or writer on ours
        self.streams = []  # transports, two per socketpair
        self.datagrams = []  # (transport, peer socket)
        self.sockets = []
        self.serial = 0

    def handler(self, loop, context):
        exc = context.get("exception")
        self.trace.event("handler", re.sub(r"0x[0-9a-f]+", "0x?",
                                           context["message"]),
                         exc and describe_exception(exc))

    def callback(self, tag):
        self.trace.event("callback", tag)

    def failing_callback(self, tag):
        self.trace.event("callback", tag)
        raise RuntimeError(f"callback {tag} failed")

    def socketpair(self):
        pair = socket.socketpair(socket.AF_UNIX)
        for s in pair:
            s.setblocking(False)
        self.sockets.extend(pair)
        return pair

    @staticmethod
    def pick(items, index):
        """The item a step's index names (run() made one of each kind)."""
        number = index % len(items)
        return number, items[number]

    async def settle(self):
        quiet = 0
        for _ in range(SETTLE_ROUNDS):
            moves = self.trace.moves
            await asyncio.sleep(0)
            quiet = quiet + 1 if self.trace.moves == moves else 0
            if quiet >= QUIET_ROUNDS:
                return

    # -- steps: each takes the step's arguments -----------------------------

    async def soon(self, tag, fails):
        self.handles.append(self.loop.call_soon(
            self.failing_callback if fails else self.callback, tag))

    def unique(self, delay):
        """delay plus a few microseconds no other timer has: timers with
        equal deadlines run in the order scheduled on casyncio and in an
        undefined order on stdlib (a documented difference)."""
        self.serial += 1
        return delay + self.serial * 1e-6

    async def later(self, tag, delay, fails):
        self.handles.append(self.loop.call_later(
            self.unique(delay),
            self.failing_callback if fails else self.callback, tag))

    async def at(self, tag, offset):
        self.handles.append(self.loop.call_at(
            self.now + self.unique(offset), self.callback, tag))

    async def cancel_handle(self, index):
        if self.handles:
            self.handles[index % len(self.handles)].cancel()

    async def advance(self, seconds):
        self.now += seconds

    def add_task(self, tag, coro):
        task = self.loop.create_task(coro, name=f"task-{tag}")
        task.add_done_callback(
            lambda t: self.trace.event("task_done", tag, describe_outcome(t)))
        self.tasks.append(task)

    async def sleeper(self, tag, delay, fails):
        self.trace.event("task_start", tag)
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError as exc:
            self.trace.event("task_cancelled", tag, str(exc))
            raise
        if fails:
            raise ValueError(f"task {tag} failed")
        return tag

    async def task(self, tag, delay, fails):
        self.add_task(tag, self.sleeper(tag, self.unique(delay), fails))

    async def cancel_task(self, index, message):
        if self.tasks:
            task = self.tasks[index % len(self.tasks)]
            self.trace.event("cancel", task.get_name(), task.cancel(message))

    async def uncancel_task(self, index):
        if self.tasks:
            task = self.tasks[index % len(self.tasks)]
            self.trace.event("uncancel", task.get_name(), task.uncancel())

    async def shield(self, tag, index):
        if self.tasks:
            inner = self.tasks[index % len(self.tasks)]

            async def shielded():
                return await asyncio.shield(inner)
            self.add_task(tag, shielded())

    async def wait_for(self, tag, delay, timeout):
        self.add_task(tag, asyncio.wait_for(
            self.sleeper(tag, self.unique(delay), False),
            None if timeout is None else self.unique(timeout)))

    async def task_group(self, tag, delays, failing):
        # The children leave no events: a TaskGroup keeps them in a set,
        # so the order it cancels them in follows their addresses.
        async def child(delay, fails):
            await asyncio.sleep(delay)
            if fails:
                raise ValueError(f"a child of {tag} failed")

        async def group():
            async with asyncio.TaskGroup() as tg:
                for i, delay in enumerate(delays):
                    tg.create_task(child(self.unique(delay), i == failing))
        self.add_task(tag, group())

    async def reader(self):
        ours, peer = self.socketpair()
        name = f"reader-{len(self.readers)}"

        def readable():
            try:
                data = ours.recv(65536)
            except BlockingIOError:
                return
            if data:
                self.trace.data(name, data)
            else:
                self.trace.event("reader_eof", name)
                self.loop.remove_reader(ours)

        self.loop.add_reader(ours, readable)
        self.readers.append((ours, peer))

    async def reader_op(self, index, op, size):
        number, (ours, peer) = self.pick(self.readers, index)
        if op == "send" and peer.fileno() >= 0:
            try:
                peer.send(payload(f"r{number}", size))
            except (BlockingIOError, BrokenPipeError) as exc:
                self.trace.event("peer_send", type(exc).__name__)
        elif op == "shut" and peer.fileno() >= 0:
            peer.shutdown(socket.SHUT_WR)
        elif op == "remove":
            self.trace.event("remove_reader", number,
                             self.loop.remove_reader(ours))
        elif op == "writer":
            def writable():
                self.trace.event("writable", number)
                self.loop.remove_writer(ours)
            self.loop.add_writer(ours, writable)

    async def stream(self):
        pair = self.socketpair()
        for s in pair:
            name = f"stream-{len(self.streams)}"
            transport, _ = await self.loop.connect_accepted_socket(
                lambda: StreamRecorder(self.trace, name), s)
            self.streams.append(transport)

    async def stream_op(self, index, op, size):
        number, transport = self.pick(self.streams, index)
        data = payload(f"s{number}", size)
        try:
            self.transport_call(transport, op, data, size)
        except Exception as exc:
            self.trace.event("raised", describe_exception(exc))
        self.trace.event("buffered", number,
                         transport.get_write_buffer_size(),
                         transport.get_write_buffer_limits(),
                         transport.is_closing(), transport.is_reading())

    @staticmethod
    def transport_call(transport, op, data, size):
        if op == "write":
            transport.write(data)
        elif op == "writelines":
            if STDLIB_WRITELINES_FIXED:
                transport.writelines([data, data[:size // 2]])
        elif op == "write_eof":
            transport.write_eof()
        elif op == "pause":
            transport.pause_reading()
        elif op == "resume":
            transport.resume_reading()
        elif op == "limits":
            transport.set_write_buffer_limits(high=size)
        elif op == "close":
            transport.close()
        elif op == "abort":
            transport.abort()

    async def datagram(self):
        # Connected both ways, made by the loop (with sock= and no remote
        # address, stdlib's sendto() after close raises: see test_udp.py).
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sockets.append(peer)
        peer.setblocking(False)
        peer.bind(("127.0.0.1", 0))
        name = f"datagram-{len(self.datagrams)}"
        transport, _ = await self.loop.create_datagram_endpoint(
            lambda: DatagramRecorder(self.trace, name),
            local_addr=("127.0.0.1", 0), remote_addr=peer.getsockname())
        peer.connect(transport.get_extra_info("sockname"))
        self.datagrams.append((transport, peer))

    async def datagram_op(self, index, op, size):
        number, (transport, peer) = self.pick(self.datagrams, index)
        data = payload(f"d{number}", size)
        if op == "sendto":
            transport.sendto(data)
            await self.settle()
            try:
                received = len(peer.recv(65536))
            except OSError as exc:  # nothing, or refused once ours closed
                received = type(exc).__name__
            self.trace.event("peer_received", number, received)
        elif op == "peer_send":
            try:
                peer.send(data)
            except OSError as exc:
                self.trace.event("peer_send", type(exc).__name__)
        elif op == "close":
            transport.close()

    async def sock_round_trip(self, size):
        a, b = self.socketpair()
        data = payload("sock", size)
        sent = self.loop.create_task(self.loop.sock_sendall(a, data))
        got = bytearray()
        while len(got) < size:
            chunk = await self.loop.sock_recv(b, size - len(got))
            if not chunk:
                break
            got.extend(chunk)
        await sent
        self.trace.event("sock_round_trip", len(got), zlib.crc32(got))

    async def executor(self, tag):
        result = await self.loop.run_in_executor(None, str.upper, tag)
        self.trace.event("executor", result)

    async def run(self, program):
        # Something for every kind of step to act on from the start.
        await self.reader()
        await self.stream()
        await self.datagram()
        await self.settle()
        for name, *args in program:
            self.trace.event("step", name, *args)
            await getattr(self, name)(*args)
            await self.settle()
        for task in self.tasks:
            task.cancel()
        await self.settle()
        for transport in self.streams:
            transport.close()
        for transport, _ in self.datagrams:
            transport.close()
        for ours, _ in self.readers:
            self.loop.remove_reader(ours)
            self.loop.remove_writer(ours)
        await self.settle()
        for s in self.sockets:
            s.close()


tags = st.sampled_from("abcdefgh")
delays = st.sampled_from([-1, 0, 0.001, 0.5, 1, 2.5, 10])
sizes = st.sampled_from([1, 100, 4096, 65536, 300_000])
indices = st.integers(0, 7)

step = st.one_of(
    st.tuples(st.just("soon"), tags, st.booleans()),
    st.tuples(st.just("later"), tags, delays, st.booleans()),
    st.tuples(st.just("at"), tags, delays),
    st.tuples(st.just("cancel_handle"), indices),
    st.tuples(st.just("advance"), st.sampled_from([0.001, 0.5, 1, 3, 20])),
    st.tuples(st.just("task"), tags, delays, st.booleans()),
    st.tuples(st.just("cancel_task"), indices,
              st.sampled_from([None, "stop"])),
    st.tuples(st.just("uncancel_task"), indices),
    st.tuples(st.just("shield"), tags, indices),
    st.tuples(st.just("wait_for"), tags, delays,
              st.sampled_from([None, 0, 0.5, 2])),
    st.tuples(st.just("task_group"), tags,
              st.lists(delays, min_size=1, max_size=3), st.integers(-1, 2)),
    st.tuples(st.just("reader")),
    st.tuples(st.just("reader_op"), indices,
              st.sampled_from(["send", "shut", "remove", "writer"]), sizes),
    st.tuples(st.just("stream")),
    st.tuples(st.just("stream_op"), indices,
              st.sampled_from(["write", "writelines", "write_eof", "pause",
                               "resume", "limits", "close", "abort"]),
              sizes),
    st.tuples(st.just("datagram")),
    st.tuples(st.just("datagram_op"), indices,
              st.sampled_from(["sendto", "peer_send", "close"]),
              st.sampled_from([0, 1, 100, 4096])),
    st.tuples(st.just("sock_round_trip"), sizes),
    st.tuples(st.just("executor"), tags),
)

LOOPS = {"stdlib": asyncio.SelectorEventLoop,
         "casyncio": casyncio.new_event_loop}


def run_program(kind, program):
    loop = LOOPS[kind]()
    machine = Machine(loop)
    logger = logging.getLogger("asyncio")
    recorder = Recorder(machine.trace)
    logger.addHandler(recorder)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        loop.run_until_complete(machine.run(program))
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(old_level)
        loop.close()
    return machine.trace.final()


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          derandomize=not os.environ.get("CASYNCIO_FUZZ_RANDOM"),
          suppress_health_check=list(HealthCheck))
@given(st.lists(step, min_size=1, max_size=25))
def test_random_program_runs_as_on_stdlib(program):
    trace = run_program("stdlib", program)
    # What the programs reach: pytest --hypothesis-show-statistics.
    for kind in sorted({event[0] for event in trace}):
        hypothesis.event(kind)
    assert run_program("casyncio", program) == trace
