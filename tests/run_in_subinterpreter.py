"""Runs pytest inside a subinterpreter with a GIL of its own (Python
3.14+'s concurrent.interpreters): the parity suite, on both loops, as
code that serves from a subinterpreter would run it. Tests of signals and
fork, which Python allows in the main interpreter only, are skipped there
(the main_interpreter marker, conftest.py).

    python tests/run_in_subinterpreter.py [PYTEST ARGS...]

Exits with pytest's status; pytest's own output is the report.
"""
import sys
from concurrent import interpreters

# faulthandler cannot be loaded in a subinterpreter, nor hypothesis (its
# native module), whose pytest plugin pytest would load.
PYTEST_ARGS = ["-p", "no:faulthandler", "-p", "no:hypothesispytest"]


def main(args):
    interp = interpreters.create()
    status = interpreters.create_queue()
    try:
        interp.prepare_main(status=status)
        interp.exec(
            "import sys\n"
            "sys.argv = ['pytest']\n"
            "import pytest\n"
            f"status.put(int(pytest.main({PYTEST_ARGS + args!r})))\n")
        return status.get()
    finally:
        interp.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
