"""Builds corio's asyncio event loop (corio._corio) against the corio
library: `make python` runs this with CORIO_LIB pointing at libcorio.a,
built with -fPIC, so the extension carries the library inside it."""
import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("CORIO_ROOT", os.path.dirname(HERE))
LIB = os.environ.get("CORIO_LIB", os.path.join(ROOT, "build", "cc", "libcorio.a"))

ext = Extension(
    "corio._corio",
    sources=["corio/_corio.c", "corio/handle.c", "corio/loop.c", "corio/fdio.c",
             "corio/transport.c"],
    depends=["corio/_corio.h", LIB],
    include_dirs=[os.path.join(ROOT, "include")],
    extra_objects=[LIB],
    extra_compile_args=["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                        "-Wno-missing-field-initializers", "-Wno-cast-function-type",
                        "-fno-strict-aliasing"],
    libraries=["pthread"],
)

setup(
    name="corio",
    version="0.1",
    description="An asyncio event loop in C, on the corio runtime",
    packages=["corio"],
    ext_modules=[ext],
)
