"""`buf breaking` (WIRE_JSON) of the working tree's contracts against a git ref (main).

Works offline: the ref's proto/ is exported with `git archive`, compiled with the same
generator into a descriptor image, and buf compares the two images."""

from __future__ import annotations

import argparse
import io
import pathlib
import subprocess
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import gen  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", default="main")
    a = ap.parse_args()
    ok = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{a.against}:proto"],
                        cwd=ROOT, capture_output=True)
    if ok.returncode != 0:
        print(f"buf breaking: {a.against} has no proto/ yet; nothing to compare")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = pathlib.Path(tmp)
        archive = subprocess.run(["git", "archive", a.against, "proto"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        tarfile.open(fileobj=io.BytesIO(archive)).extractall(tmpd / "old", filter="data")
        old = gen.generate(tmpd / "old" / "proto", tmpd / "oldgen", None)
        new = gen.generate(ROOT / "proto", tmpd / "newgen", None)
        buf = pathlib.Path(sys.executable).parent / "buf"
        res = subprocess.run([str(buf), "breaking", str(new), "--against", str(old),
                              "--path", "zynk", "--config",
                              '{"version":"v2","breaking":{"use":["WIRE_JSON"]}}'])
        if res.returncode == 0:
            print(f"buf breaking: no wire/JSON-breaking change against {a.against}")
        return res.returncode


if __name__ == "__main__":
    sys.exit(main())
