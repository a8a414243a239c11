"""The only code that touches the kernel or the network.

pyroute2's package ``__init__`` imports every protocol the library speaks (IPDB, NDB,
nl80211, WireGuard, conntrack, plan9, ...), about 6 MB resident in a daemon that uses two
of them. Before any adapter imports pyroute2, the package is registered without running
that ``__init__``, so only the submodules the adapters name are loaded. A name the
``__init__`` defines (``from pyroute2 import IPRoute`` elsewhere, e.g. in tests) still
works: the first such lookup runs the real ``__init__`` into the package, once.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any


def _register_lean_pyroute2() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.origin is None or spec.submodule_search_locations is None:
        return  # not installed: the adapters' own imports report it
    origin = spec.origin
    package = types.ModuleType("pyroute2")
    package.__spec__ = spec
    package.__file__ = origin
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = "pyroute2"

    def full_package(name: str) -> Any:
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:
            # ``from pyroute2 import config``: a submodule, as a normal package gives it.
            return importlib.import_module(f"pyroute2.{name}")
        # Someone wants a name of the package itself: run its real __init__ now.
        del package.__dict__["__getattr__"]
        code = compile(Path(origin).read_bytes(), origin, "exec")
        exec(code, package.__dict__)
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module 'pyroute2' has no attribute {name!r}") from None

    package.__dict__["__getattr__"] = full_package
    sys.modules["pyroute2"] = package


_register_lean_pyroute2()
