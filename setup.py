"""Builds the _casyncio extension from the core and binding C sources.

CASYNCIO_SANITIZE=address builds with AddressSanitizer and UBSan,
CASYNCIO_SANITIZE=thread with ThreadSanitizer (tests/run_all.sh runs both).
CASYNCIO_NEWEST_TESTED=3.14 builds as if 3.14 were the newest CPython
casyncio was checked against (CIO_NEWEST_TESTED in src/ext/casyncio.h):
how the fallback for an untested Python is tested on the newest one.
CASYNCIO_PORTABLE=1 builds what macOS and the BSDs would run: the kqueue
poller and the POSIX counterpart of every Linux-only call (CIO_PORTABLE);
on Linux it links libkqueue, found under CASYNCIO_KQUEUE_PREFIX (default
/opt/libkqueue, where tools/libkqueue.sh puts it) or on the system.
"""
import glob
import os
import sys

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
libraries = []
library_dirs = []
include_dirs = ["src/core", "src/ext"]
if os.environ.get("CASYNCIO_PORTABLE") == "1":
    macros.append(("CIO_PORTABLE", "1"))
    build_base.append("portable")
    if sys.platform.startswith("linux"):
        prefix = os.environ.get("CASYNCIO_KQUEUE_PREFIX", "/opt/libkqueue")
        include_dirs.append(prefix + "/usr/include/kqueue")
        libdir = glob.glob(prefix + "/usr/lib/*/libkqueue.so")
        if libdir:
            library_dirs.append(os.path.dirname(libdir[0]))
            ldflags.append("-Wl,-rpath," + os.path.dirname(libdir[0]))
        libraries.append("kqueue")
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
            include_dirs=include_dirs,
            libraries=libraries,
            library_dirs=library_dirs,
            define_macros=macros,
            depends=glob.glob("src/*/*.h"),
            extra_compile_args=cflags,
            extra_link_args=ldflags,
        )
    ],
)
