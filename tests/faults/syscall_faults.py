"""Runs one syscall-fault case on one loop and prints its outcome as JSON.
Needs failshim.c's library preloaded (LD_PRELOAD), which is why it runs as
a process of its own (tests/test_faults.py starts it):

    LD_PRELOAD=.../libcio_failshim.so CIO_FAILSHIM=.../libcio_failshim.so \\
        python -m faults.syscall_faults LOOP PROGRAM CALL NTH ERRNO COUNT

The programs:
  echo        an echo server and CLIENTS clients on the same loop, each
              making ROUNDS round trips of a message of its own. The shim
              is armed once every client has connected (accept cases:
              before they connect), so the Nth call counts from the
              traffic. The outcome: what each client got (round trips
              with intact bytes, and the exception that ended it), the
              exceptions the server's protocols were given in
              connection_lost, the loop's exception handler calls;
  accepted    the same with clients in threads, connected before the
              shim is armed: what fails is the server's accepting and
              setting up (epoll_ctl: registering the new connection);
  udp         the same over datagram endpoints;
  subprocess  three children run and are waited for (child watching:
              pidfd_open);
  threadsafe  a thread hands the loop 200 callbacks (casyncio's wake-up
              is an eventfd, stdlib's a socket);
  sendfile    loop.sendfile() of a file over a connection that echoes it.
Every outcome also says how many fds were left open after the loop
closed, and how many calls the shim failed.
"""
import asyncio
import ctypes
import errno
import gc
import json
import os
import re
import socket
import sys
import tempfile
import threading

CLIENTS = 10
ROUNDS = 10
# Calls armed before the clients connect: they happen as connections are
# accepted.
SET_UP_CALLS = ("accept", "accept4")


class Echo(asyncio.Protocol):
    lost = []

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        Echo.lost.append(type(exc).__name__ if exc else None)


async def client(port, tag, connected, start):
    """(intact round trips, exception name or None)."""
    done = 0
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        connected.set()
        await start.wait()
        try:
            for i in range(ROUNDS):
                message = f"{tag}:{i}:".encode().ljust(1000, b".")
                writer.write(message)
                if await reader.readexactly(len(message)) == message:
                    done += 1
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
    except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
        return done, type(exc).__name__
    return done, None


async def echo_program(shim, call, nth, error, count):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    if call in SET_UP_CALLS:
        shim.cio_fail_arm(call.encode(), nth, error, count)
    connected = [asyncio.Event() for _ in range(CLIENTS)]
    start = asyncio.Event()
    clients = [asyncio.ensure_future(client(port, i, connected[i], start))
               for i in range(CLIENTS)]
    await asyncio.wait([asyncio.ensure_future(e.wait()) for e in connected],
                       timeout=5)
    if call not in SET_UP_CALLS:
        shim.cio_fail_arm(call.encode(), nth, error, count)
    start.set()
    done, pending = await asyncio.wait(clients, timeout=10)
    for task in pending:
        task.cancel()
    results = [task.result() if task in done else [0, "stalled"]
               for task in clients]
    server.close()
    await server.wait_closed()
    await asyncio.sleep(0.05)
    return {"clients": sorted(map(list, results)),
            "server_lost": sorted(Echo.lost, key=str)}


def blocking_client(sock, tag):
    """client()'s round trips over a blocking socket, in a thread."""
    done = 0
    try:
        with sock:
            for i in range(ROUNDS):
                message = f"{tag}:{i}:".encode().ljust(1000, b".")
                sock.sendall(message)
                echoed = b""
                while len(echoed) < len(message):
                    chunk = sock.recv(len(message) - len(echoed))
                    if not chunk:
                        raise EOFError
                    echoed += chunk
                done += echoed == message
    except (OSError, EOFError) as exc:
        return done, type(exc).__name__
    return done, None


async def accepted_program(shim, call, nth, error, count):
    """The clients connect (the kernel completes it) before the shim is
    armed, and echo from threads over blocking sockets: the calls that
    fail are the server's as it accepts and sets up transports."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    socks = []
    for _ in range(CLIENTS):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.settimeout(3)
        socks.append(sock)
    shim.cio_fail_arm(call.encode(), nth, error, count)
    results = await asyncio.gather(*(
        loop.run_in_executor(None, blocking_client, sock, tag)
        for tag, sock in enumerate(socks)))
    server.close()
    # A connection left open keeps wait_closed() waiting.
    try:
        await asyncio.wait_for(server.wait_closed(), 3)
        closed = True
    except asyncio.TimeoutError:
        closed = False
    await asyncio.sleep(0.05)
    return {"clients": sorted(map(list, results)),
            "server_lost": sorted(Echo.lost, key=str),
            "server_closed": closed}


async def subprocess_program(shim, call, nth, error, count):
    shim.cio_fail_arm(call.encode(), nth, error, count)
    results = []
    for code in range(3):
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c",
                f"print('child'); raise SystemExit({code})",
                stdout=asyncio.subprocess.PIPE)
        except OSError as exc:
            results.append([type(exc).__name__, exc.errno])
            continue
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
        results.append([out.decode().strip(), proc.returncode])
    return {"children": results}


class DatagramEcho(asyncio.DatagramProtocol):
    def __init__(self, echo):
        self.echo = echo
        self.received = []
        self.errors = []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if self.echo:
            self.transport.sendto(data, addr)
        else:
            self.received.append(data)

    def error_received(self, exc):
        self.errors.append(type(exc).__name__)


async def udp_program(shim, call, nth, error, count):
    """CLIENTS endpoints each send ROUNDS datagrams to an echoing one and
    count the answers: a failed recvfrom or sendto loses a datagram and
    is the protocol's error_received."""
    loop = asyncio.get_running_loop()
    server, server_protocol = await loop.create_datagram_endpoint(
        lambda: DatagramEcho(True), local_addr=("127.0.0.1", 0))
    address = server.get_extra_info("sockname")
    clients = [await loop.create_datagram_endpoint(
        lambda: DatagramEcho(False), remote_addr=address)
        for _ in range(CLIENTS)]
    shim.cio_fail_arm(call.encode(), nth, error, count)
    for i in range(ROUNDS):
        for tag, (transport, _) in enumerate(clients):
            transport.sendto(f"{tag}:{i}".encode())
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    received = sorted(len(protocol.received) for _, protocol in clients)
    errors = sorted(e for _, protocol in clients for e in protocol.errors)
    for transport, _ in clients:
        transport.close()
    server.close()
    return {"received": received, "client_errors": errors,
            "server_errors": server_protocol.errors}


async def threadsafe_program(shim, call, nth, error, count):
    loop = asyncio.get_running_loop()
    ran = []
    all_ran = loop.create_future()

    def callback(i):
        ran.append(i)
        if len(ran) == 200:
            all_ran.set_result(None)

    def hand_over():
        shim.cio_fail_arm(call.encode(), nth, error, count)
        for i in range(200):
            loop.call_soon_threadsafe(callback, i)

    thread = threading.Thread(target=hand_over)
    thread.start()
    try:
        await asyncio.wait_for(all_ran, 10)
    finally:
        thread.join()
    return {"ran": ran == list(range(200))}


async def sendfile_program(shim, call, nth, error, count):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    data = bytes(i % 253 for i in range(300_000))
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        shim.cio_fail_arm(call.encode(), nth, error, count)
        try:
            sent = await loop.sendfile(writer.transport, f)
            echoed = await asyncio.wait_for(reader.readexactly(sent), 10)
            outcome = [sent, echoed == data]
        except OSError as exc:
            outcome = [type(exc).__name__]
        writer.close()
        await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return {"sendfile": outcome, "server_lost": Echo.lost}


PROGRAMS = {"echo": echo_program, "accepted": accepted_program,
            "udp": udp_program,
            "subprocess": subprocess_program,
            "threadsafe": threadsafe_program, "sendfile": sendfile_program}


async def main(shim, program, call, nth, error, count):
    handler_calls = []
    # "Exception in callback C.method()": C is the class the loop's method
    # is defined in, which is the loop's own business.
    asyncio.get_running_loop().set_exception_handler(
        lambda loop, context: handler_calls.append(
            [re.sub(r"callback \w+\.", "callback ", context.get("message")),
             type(context.get("exception")).__name__]))
    outcome = await PROGRAMS[program](shim, call, nth, error, count)
    outcome["fired"] = shim.cio_fail_fired()
    shim.cio_fail_arm(b"", 1, 0, 0)
    outcome["handler"] = sorted(handler_calls)
    return outcome


def run(kind, program, call, nth, error_name, count):
    shim = ctypes.CDLL(os.environ["CIO_FAILSHIM"])
    if kind == "casyncio":
        import casyncio
        loop = casyncio.new_event_loop()
    else:
        loop = asyncio.SelectorEventLoop()
    fds = set(os.listdir("/proc/self/fd"))
    outcome = loop.run_until_complete(
        main(shim, program, call, nth, getattr(errno, error_name), count))
    loop.close()
    del loop
    gc.collect()
    outcome["leaked_fds"] = sorted(filter(None, (
        fd_kind(fd) for fd in set(os.listdir("/proc/self/fd")) - fds)))
    return outcome


def fd_kind(fd):
    """"socket", "pipe", "anon_inode:[eventfd]", a path...: what fd is."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}").split(":[")[0]
    except FileNotFoundError:  # the listing's own fd
        return None


if __name__ == "__main__":
    kind, program, call, nth, error_name, count = sys.argv[1:]
    print(json.dumps(run(kind, program, call, int(nth), error_name,
                         int(count))))
