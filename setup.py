"""Builds the _casyncio extension from the core and binding C sources.

CASYNCIO_SANITIZE=1 builds with AddressSanitizer and UBSan (see .ci/run).
"""
import glob
import os

from setuptools import Extension, setup

cflags = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
          "-Wno-unused-parameter", "-Wno-missing-field-initializers",
          "-Wno-cast-function-type"]
ldflags = []
options = {}
if os.environ.get("CASYNCIO_SANITIZE") == "1":
    sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                "-O1", "-g"]
    cflags += sanitize
    ldflags += sanitize
    # Separate objects: an uninstrumented build must not be reused.
    options = {"build": {"build_base": "build/sanitize"}}

setup(
    options=options,
    ext_modules=[
        Extension(
            "casyncio._casyncio",
            sources=sorted(glob.glob("src/core/*.c") +
                           glob.glob("src/ext/*.c")),
            include_dirs=["src/core", "src/ext"],
            depends=glob.glob("src/*/*.h"),
            extra_compile_args=cflags,
            extra_link_args=ldflags,
        )
    ],
)
