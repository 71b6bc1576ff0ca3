"""Transports whose construction fails: for K = 1, 2, ... the K-th memory
allocation fails while connect_accepted_socket, create_datagram_endpoint,
connect_read_pipe or connect_write_pipe makes its transport. A call that
raised must leave nothing behind that runs later: a protocol whose
connection_made is called with a transport that is not closing would wait
for ever for data that never comes.

stdlib's transports schedule connection_made first in __init__; when a
later call_soon of the same __init__ fails, connection_made still runs,
with the transport nobody got (casyncio schedules the three calls all or
none: cio_soon_batch_t).

    python -m faults.half_made casyncio|stdlib
(run from tests/). Prints one JSON line: per factory, how many Ks raised
and the Ks where a raised call's connection_made ran anyway. On stdlib's
loop (3.15.2) the program does not finish: one of the Ks leaves
run_until_complete() waiting for ever, so test_faults runs it on
casyncio only.
"""
import asyncio
import json
import os
import socket
import sys

import _testcapi


class Made(asyncio.Protocol):
    def __init__(self):
        self.transports = []

    def connection_made(self, transport):
        self.transports.append(transport)


async def accepted(loop, protocol):
    a, b = socket.socketpair()
    try:
        return await loop.connect_accepted_socket(lambda: protocol, a)
    finally:
        b.close()


async def datagram(loop, protocol):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return await loop.create_datagram_endpoint(lambda: protocol, sock=sock)


async def read_pipe(loop, protocol):
    r, w = os.pipe()
    os.close(w)
    return await loop.connect_read_pipe(lambda: protocol, open(r, "rb", 0))


async def write_pipe(loop, protocol):
    r, w = os.pipe()
    os.close(r)
    return await loop.connect_write_pipe(lambda: protocol, open(w, "wb", 0))


FACTORIES = {"accepted": accepted, "datagram": datagram,
             "read_pipe": read_pipe, "write_pipe": write_pipe}


async def attempt(loop, factory, k):
    """Whether the call raised, and whether a raised call left its
    connection_made to run on a transport that is not closing."""
    protocol = Made()
    _testcapi.set_nomemory(k, k + 1)
    try:
        transport, _ = await factory(loop, protocol)
    except Exception:  # a MemoryError, or what followed from one
        raised = True
    else:
        raised = False
        transport.close()
    finally:
        _testcapi.remove_mem_hooks()
    for _ in range(3):  # what the constructor queued runs now
        await asyncio.sleep(0)
    half_made = raised and any(not t.is_closing()
                               for t in protocol.transports)
    for transport in protocol.transports:
        transport.close()
    return raised, half_made


def main():
    kind = sys.argv[1]
    if kind == "casyncio":
        import casyncio
        new_loop = casyncio.new_event_loop
    else:
        new_loop = asyncio.SelectorEventLoop
    report = {}
    for name, factory in FACTORIES.items():
        raised, half_made, clean_in_a_row, k = 0, [], 0, 1
        # Past the call's last allocation every K succeeds.
        while clean_in_a_row < 25:
            loop = new_loop()
            loop.set_exception_handler(lambda loop, context: None)
            try:
                did_raise, left = loop.run_until_complete(
                    attempt(loop, factory, k))
            finally:
                loop.close()
            raised += did_raise
            if left:
                half_made.append(k)
            clean_in_a_row = 0 if did_raise else clean_in_a_row + 1
            k += 1
        report[name] = {"raised": raised, "half_made": half_made}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
