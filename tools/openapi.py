"""Write the OpenAPI document for a FileDescriptorSet image (called by tools/gen.py).

    python tools/openapi.py gen/zynk.binpb gen/openapi.json

The builder is gateway.openapi -- the same one the gateway serves /openapi.json from -- and
the output is deterministic (sorted keys, stable ordering), so `make gen` is reproducible.
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def write(image_path: str | pathlib.Path, out_path: str | pathlib.Path) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from gateway import openapi

    document = openapi.build(openapi.files_from_image(image_path))
    out = pathlib.Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(openapi.dump(document), encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python tools/openapi.py IMAGE.binpb OUT.json")
    write(sys.argv[1], sys.argv[2])
