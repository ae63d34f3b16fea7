import importlib.util
import pathlib

import pytest

_HELPER = pathlib.Path(__file__).resolve().parents[2] / "protos" / "gwtest_build.py"


def _helper():
    spec = importlib.util.spec_from_file_location("_gwtest_build_loader", _HELPER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.load()


@pytest.fixture(scope="session")
def gwtest(tmp_path_factory):
    """The test-only gwtest.v1 protos, generated with tools/gen.py and imported."""
    return _helper().build(tmp_path_factory.mktemp("gwtest_gen"))
