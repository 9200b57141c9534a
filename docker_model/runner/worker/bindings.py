"""llama.cpp's C API, as llama-cpp-python's low-level ctypes module, without the rest of that package.

`import llama_cpp` runs the package's `__init__`, which also imports its high-level `Llama` class and with
it numpy and its chat formats: a tenth of a second of every cold start, for code the worker never uses.
Registering the package without running its `__init__` lets `llama_cpp.llama_cpp` load alone: the same
shared library, the same functions.
"""

from __future__ import annotations

import importlib.util
import sys


def _register_package_without_init() -> None:
    if "llama_cpp" in sys.modules:  # imported in full already (a test process): use that
        return
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None:
        raise ImportError("llama-cpp-python is not installed; reinstall docker-model with ./install.sh")
    sys.modules["llama_cpp"] = importlib.util.module_from_spec(spec)


_register_package_without_init()

from llama_cpp import llama_cpp as lc  # noqa: E402 - after the registration above

__all__ = ["lc"]
