"""Generates Python stubs into gen/ and the Envoy descriptor set into build/ from proto/."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import grpc_tools
from google.api import annotations_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
GEN = ROOT / "gen"
BUILD = ROOT / "build"
DESCRIPTOR = BUILD / "aiselector.pb"
# google/api/*.proto and google/rpc/*.proto ship inside googleapis-common-protos.
GOOGLEAPIS = Path(annotations_pb2.__file__).resolve().parent.parent.parent
# google/protobuf/*.proto ship inside grpcio-tools.
WELL_KNOWN = Path(grpc_tools.__file__).resolve().parent / "_proto"
# Error detail types Envoy must know to print `google.rpc.Status` details as JSON.
EXTRA_FOR_ENVOY = ["google/rpc/status.proto", "google/rpc/error_details.proto"]


def run(args: list[str]) -> None:
    """Runs protoc with the include paths; exits on failure."""
    cmd = ["protoc", f"-I{PROTO}", f"-I{GOOGLEAPIS}", f"-I{WELL_KNOWN}", *args]
    if protoc.main(cmd) != 0:
        sys.exit(f"protoc failed: {' '.join(args)}")


def main() -> None:
    sources = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    shutil.rmtree(GEN, ignore_errors=True)
    GEN.mkdir()
    BUILD.mkdir(exist_ok=True)
    run([f"--python_out={GEN}", f"--pyi_out={GEN}", f"--grpc_python_out={GEN}", *sources])
    run(
        [
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={DESCRIPTOR}",
            *sources,
            *EXTRA_FOR_ENVOY,
        ]
    )
    print(f"generated {len(sources)} protos into {GEN.name}/ and {DESCRIPTOR.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
