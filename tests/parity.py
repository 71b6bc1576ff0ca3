"""Helpers the parity tests share (the fixtures are in conftest.py)."""
import asyncio


def on_stdlib(loop, run, *args):
    """run(reference, *args) on a fresh stdlib loop whose debug mode is
    loop's: the result a test compares casyncio's with."""
    reference = asyncio.SelectorEventLoop()
    reference.set_debug(loop.get_debug())
    try:
        return run(reference, *args)
    finally:
        reference.close()
