"""Builds the _casyncio extension from the core and binding C sources.

CASYNCIO_SANITIZE=address builds with AddressSanitizer and UBSan,
CASYNCIO_SANITIZE=thread with ThreadSanitizer (tests/run_all.sh runs both).
CASYNCIO_NEWEST_TESTED=3.14 builds as if 3.14 were the newest CPython
casyncio was checked against (CIO_NEWEST_TESTED in src/ext/casyncio.h):
how the fallback for an untested Python is tested on the newest one.
"""
import glob
import os

from setuptools import Extension, setup

cflags = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
          "-Wno-unused-parameter", "-Wno-missing-field-initializers",
          "-Wno-cast-function-type"]
ldflags = []
macros = []
build_base = []
newest_tested = os.environ.get("CASYNCIO_NEWEST_TESTED")
if newest_tested:
    major, minor = map(int, newest_tested.split("."))
    macros.append(("CIO_NEWEST_TESTED", hex(major << 24 | minor << 16)))
    build_base.append(f"tested-{major}.{minor}")
SANITIZERS = {"address": "-fsanitize=address,undefined",
              "thread": "-fsanitize=thread"}
sanitizer = os.environ.get("CASYNCIO_SANITIZE")
if sanitizer:
    sanitize = [SANITIZERS[sanitizer], "-fno-omit-frame-pointer", "-O1", "-g"]
    cflags += sanitize
    ldflags += sanitize
    build_base.append("sanitize-" + sanitizer)
# Separate objects per variant: setuptools would reuse a build made with
# other flags.
options = ({"build": {"build_base": "build/" + "-".join(build_base)}}
           if build_base else {})

setup(
    options=options,
    ext_modules=[
        Extension(
            "casyncio._casyncio",
            sources=sorted(glob.glob("src/core/*.c") +
                           glob.glob("src/ext/*.c")),
            include_dirs=["src/core", "src/ext"],
            define_macros=macros,
            depends=glob.glob("src/*/*.h"),
            extra_compile_args=cflags,
            extra_link_args=ldflags,
        )
    ],
)
