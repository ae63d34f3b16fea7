"""Regenerate gen/ from proto/ alone, reproducibly.

Steps: extract buf/validate/validate.proto's descriptor from the protovalidate wheel
(no third-party .proto sources are vendored), run protoc for Python messages, gRPC stubs
and .pyi stubs, write the combined descriptor set, then the OpenAPI document.

Usage: python tools/gen.py [--proto-root proto] [--out gen] [--openapi PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import shutil
import site
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _site_packages_with(rel: str) -> pathlib.Path:
    for p in [*site.getsitepackages(), site.getusersitepackages()]:
        if (pathlib.Path(p) / rel).exists():
            return pathlib.Path(p)
    raise SystemExit(f"cannot find {rel} in site-packages (is the venv installed?)")


def validate_descriptor_set(dest: pathlib.Path) -> None:
    """Write a FileDescriptorSet holding buf/validate/validate.proto and its imports.

    protovalidate's wheel embeds the serialized FileDescriptorProto in its generated module
    (protovalidate/_gen/buf/validate/validate_pb.py); we read the bytes without importing
    that module's runtime.
    """
    import ast

    sp = _site_packages_with("protovalidate/_gen/buf/validate/validate_pb.py")
    src = (sp / "protovalidate/_gen/buf/validate/validate_pb.py").read_text()
    tree = ast.parse(src)
    blob = None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "file_desc"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            blob = node.args[0].value
            break
    if blob is None:
        raise SystemExit("could not find validate.proto's descriptor in protovalidate")
    fds = descriptor_pb2.FileDescriptorSet()
    from google.protobuf import descriptor_pb2 as d, duration_pb2, field_mask_pb2, timestamp_pb2

    for mod in (d, duration_pb2, field_mask_pb2, timestamp_pb2):
        fdp = descriptor_pb2.FileDescriptorProto()
        mod.DESCRIPTOR.CopyToProto(fdp)
        fds.file.append(fdp)
    validate = descriptor_pb2.FileDescriptorProto.FromString(blob)
    fds.file.append(validate)
    dest.write_bytes(fds.SerializeToString(deterministic=True))


def proto_files(root: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.proto"))


def run_protoc(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "grpc_tools.protoc", *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        raise SystemExit(f"protoc failed: {' '.join(cmd[:6])} ...")
    if res.stderr.strip():
        sys.stderr.write(res.stderr)


def generate(proto_root: pathlib.Path, out: pathlib.Path, openapi: pathlib.Path | None,
             with_validate: bool = True, *,
             include_paths: list[pathlib.Path] | tuple[pathlib.Path, ...] = ()) -> pathlib.Path:
    """Generate Python for every .proto under proto_root into out; return the image path.

    include_paths: extra protoc include directories for imports outside proto_root (e.g. a
    test-only proto importing zynk/api/v1/annotations.proto from proto/). Only proto_root's
    own files are generated.
    """
    import grpc_tools

    wkt = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    googleapis = _site_packages_with("google/api/annotations.proto")
    files = proto_files(proto_root)
    if not files:
        raise SystemExit(f"no .proto files under {proto_root}")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        vset = pathlib.Path(tmp) / "validate.binpb"
        validate_descriptor_set(vset)
        # googleapis' google/api protos are read from site-packages; the well-known types and
        # buf/validate come from the descriptor set so protoc sees exactly one copy of each.
        includes = [f"-I{proto_root}", *(f"-I{p}" for p in include_paths),
                    f"-I{googleapis}", f"-I{wkt}"]
        common = [*includes, f"--descriptor_set_in={vset}"]
        run_protoc([*common, f"--python_out={out}", f"--pyi_out={out}",
                    f"--grpc_python_out={out}", *files])
        if with_validate:
            run_protoc([f"--descriptor_set_in={vset}", f"--python_out={out}",
                        f"--pyi_out={out}", "buf/validate/validate.proto"])
        image = out / "zynk.binpb"
        run_protoc([*common, "--include_imports", "--include_source_info",
                    f"-o{image}", *files])
    # Packages for every generated directory so imports are plain Python packages.
    for d in sorted({p.parent for p in out.rglob("*_pb2.py")}):
        cur = d
        while cur != out and cur.is_relative_to(out):
            init = cur / "__init__.py"
            if not init.exists():
                init.write_text("")
            cur = cur.parent
    if openapi is not None:
        spec = importlib.util.spec_from_file_location("openapi_gen", ROOT / "tools" / "openapi.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.write(image, openapi)
    return image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proto-root", default=str(ROOT / "proto"))
    ap.add_argument("--out", default=str(ROOT / "gen"))
    ap.add_argument("--openapi", default=None,
                    help="where to write the OpenAPI document (default gen/openapi.json)")
    ap.add_argument("--clean", action="store_true", help="remove the output directory first")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    if a.clean and out.exists():
        shutil.rmtree(out)
    openapi = pathlib.Path(a.openapi) if a.openapi else out / "openapi.json"
    generate(pathlib.Path(a.proto_root), out, openapi)


if __name__ == "__main__":
    main()
