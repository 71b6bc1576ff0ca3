"""Helpers the parity tests share (the fixtures are in conftest.py)."""
import asyncio
import gc
import os
import socket
import sys
import warnings

import pytest

import casyncio

# Whether casyncio runs its C copies of stdlib classes' code here (streams,
# SSLProtocol): on a Python newer than the newest it was checked against it
# runs stdlib's own instead (tests/test_versions.py).
C_COPIES = sys.version_info[:2] <= casyncio.NEWEST_TESTED_PYTHON
needs_c_copies = pytest.mark.skipif(
    not C_COPIES, reason="stdlib's own code runs on this Python (untested "
    "by this build): no C copy to test")


def ipv6_loopback_works():
    """Whether this machine can bind IPv6's loopback address."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def on_stdlib(loop, run, *args):
    """run(reference, *args) on a fresh stdlib loop whose debug mode is
    loop's: the result a test compares casyncio's with."""
    reference = asyncio.SelectorEventLoop()
    reference.set_debug(loop.get_debug())
    try:
        return run(reference, *args)
    finally:
        reference.close()


def assert_cancelled_call_leaves_nothing(loop, make_call):
    """Cancelling the Task of make_call(loop) right after it starts (while
    it resolves a name) raises CancelledError and leaves no fd open and
    no ResourceWarning."""
    async def main():
        task = asyncio.ensure_future(make_call(loop))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    fds = len(os.listdir("/proc/self/fd"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loop.run_until_complete(main())
        gc.collect()
    assert len(os.listdir("/proc/self/fd")) == fds
