"""Soak: minutes of mixed load on one loop, sampled every few seconds. Its
RSS, open fds, threads and the loop's own counts (timers, ready Handles,
watched fds, children) must stay flat: a leak shows as a climb.

The load, all at once: 20 TCP clients that connect, make 5 echo round
trips and close, over and over (connection churn); 2 TLS clients that
handshake, make one round trip and close, over and over; a subprocess
every 0.2 s; 1000 timers at a time with random delays, half of them
cancelled; a UDP ping-pong.

    python -m faults.soak [--minutes 10] [--loop casyncio|stdlib]
        [--every 5]
(run from tests/). Prints one line per sample, then the first and last
samples' figures and whether each stayed within its bound; exits 1 when
one did not.
"""
import argparse
import asyncio
import os
import random
import resource
import ssl
import sys
import tempfile
import threading
import time

from faults.scenarios import echo, make_resources

# How much a figure may move between the first sample after warm-up and
# the last: RSS by allocator noise, the others by what is in flight.
BOUNDS = {"rss_kib": 8 * 1024, "fds": 12, "threads": 4,
          "other_timers": 100, "ready": 200, "watched_fds": 40,
          "children": 3}


def new_loop(kind):
    if kind == "casyncio":
        import casyncio
        return casyncio.new_event_loop()
    return asyncio.SelectorEventLoop()


def loop_counts(loop):
    if hasattr(loop, "_internal_counts"):
        return loop._internal_counts()
    # stdlib keeps cancelled TimerHandles until a purge: not counted.
    return {"timers": sum(not h.cancelled() for h in loop._scheduled),
            "ready": len(loop._ready),
            "watched_fds": len(loop._selector.get_map()), "children": 0}


def sample(loop, counts):
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * resource.getpagesize() // 1024
    figures = {"rss_kib": rss, "fds": len(os.listdir("/proc/self/fd")),
               "threads": threading.active_count(), **loop_counts(loop),
               **counts}
    # The timer job's own batch (0 to 500 live timers, whatever the
    # sampling phase) is not the loop's: what is left must stay flat.
    figures["other_timers"] = figures["timers"] - counts["timers_pending"]
    return figures


async def churn(port, counts, ssl_context=None):
    while True:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ssl_context,
            server_hostname="localhost" if ssl_context else None)
        for i in range(1 if ssl_context else 5):
            message = b"x" * random.randrange(1, 20000)
            writer.write(message)
            assert await reader.readexactly(len(message)) == message
        writer.close()
        await writer.wait_closed()
        counts["connections"] += 1


async def children(counts):
    while True:
        proc = await asyncio.create_subprocess_exec("true")
        assert await proc.wait() == 0
        counts["children_run"] += 1
        await asyncio.sleep(0.2)


async def timers(counts):
    loop = asyncio.get_running_loop()

    def fired():
        counts["timers_fired"] += 1
        counts["timers_pending"] -= 1

    while True:
        handles = [loop.call_later(random.random() * 0.5, fired)
                   for _ in range(1000)]
        for handle in handles[::2]:
            handle.cancel()
        counts["timers_pending"] += len(handles[1::2])
        await asyncio.sleep(0.5)


class Pong(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


async def ping_pong(counts):
    loop = asyncio.get_running_loop()
    server, _ = await loop.create_datagram_endpoint(
        Pong, local_addr=("127.0.0.1", 0))
    queue = asyncio.Queue()

    class Ping(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            queue.put_nowait(data)

    client, _ = await loop.create_datagram_endpoint(
        Ping, remote_addr=server.get_extra_info("sockname"))
    while True:
        client.sendto(b"ping")
        await asyncio.wait_for(queue.get(), 5)
        counts["datagrams"] += 1
        await asyncio.sleep(0.001)


async def soak(args, resources):
    loop = asyncio.get_running_loop()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(resources["cert"], resources["key"])
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(resources["cert"])
    tcp = await asyncio.start_server(echo, "127.0.0.1", 0)
    tls = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    port, tls_port = (s.sockets[0].getsockname()[1] for s in (tcp, tls))
    counts = dict.fromkeys(("connections", "children_run", "timers_fired",
                            "timers_pending", "datagrams"), 0)
    load = [asyncio.ensure_future(job) for job in (
        *(churn(port, counts) for _ in range(20)),
        *(churn(tls_port, counts, client_ctx) for _ in range(2)),
        children(counts), timers(counts), ping_pong(counts))]
    samples = []
    end = time.monotonic() + args.minutes * 60
    while time.monotonic() < end:
        await asyncio.wait(load, timeout=args.every,
                           return_when=asyncio.FIRST_EXCEPTION)
        for job in load:
            if job.done():
                job.result()  # a failed job ends the soak with its error
        samples.append(sample(loop, counts))
        print(" ".join(f"{k}={v}" for k, v in samples[-1].items()),
              flush=True)
    for job in load:
        job.cancel()
    await asyncio.gather(*load, return_exceptions=True)
    for server in (tcp, tls):
        server.close()
        await server.wait_closed()
    return samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", type=float, default=5)
    parser.add_argument("--loop", default="casyncio",
                        choices=("casyncio", "stdlib"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        samples = asyncio.run(soak(args, make_resources(directory)),
                              loop_factory=lambda: new_loop(args.loop))
    # The first fifth warms up (allocator arenas, caches, the executor).
    first, last = samples[len(samples) // 5], samples[-1]
    print(f"Python {sys.version.split()[0]}, {args.loop}, "
          f"{args.minutes:g} min: {last['connections']} connections, "
          f"{last['children_run']} children, {last['timers_fired']} timers, "
          f"{last['datagrams']} datagrams")
    flat = True
    for key, bound in BOUNDS.items():
        moved = last[key] - first[key]
        ok = moved <= bound
        flat &= ok
        print(f"  {key:<12} {first[key]:>8} -> {last[key]:>8} "
              f"({moved:+d}, bound {bound}): {'flat' if ok else 'CLIMBED'}")
    sys.exit(0 if flat else 1)


if __name__ == "__main__":
    main()
