"""Compile the test-only protos (tests/protos, package gwtest.v1) at test time and import them.

Uses tools/gen.py's generate() exactly as `make gen` does, into a temporary directory that is
put on sys.path, so the tests prove that an annotated RPC is exposed with no gateway change.
Load this file with `load()` below (by path; `tests` is not a package).
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys
from types import ModuleType, SimpleNamespace

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULE = "gwtest.v1.gwtest_pb2"
_built: SimpleNamespace | None = None


def _load_by_path(name: str, path: pathlib.Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load() -> ModuleType:
    """This helper as one shared module, however many conftests load it."""
    return _load_by_path("_zynk_gwtest_build", pathlib.Path(__file__))


def build(out_dir: pathlib.Path) -> SimpleNamespace:
    """Generate (once per process) and import gwtest; returns pb2, pb2_grpc, image, out."""
    global _built
    if _built is None:
        gen = _load_by_path("_zynk_tools_gen", ROOT / "tools" / "gen.py")
        image = gen.generate(
            ROOT / "tests" / "protos", out_dir, None,
            with_validate=False, include_paths=[ROOT / "proto"],
        )
        sys.path.insert(0, str(out_dir))
        importlib.invalidate_caches()
        pb2 = importlib.import_module(MODULE)
        pb2_grpc = importlib.import_module("gwtest.v1.gwtest_pb2_grpc")
        _built = SimpleNamespace(pb2=pb2, pb2_grpc=pb2_grpc, image=image, out=out_dir,
                                 module=MODULE)
    return _built
