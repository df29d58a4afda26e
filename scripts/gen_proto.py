"""Generates Python stubs into gen/ and the Envoy descriptor set into build/ from proto/.

With `--buf-against REF` it prepares Buf's inputs instead (`make lint`): links the googleapis files
the contract imports into build/googleapis (a module of buf.yaml) and builds the descriptor set of
proto/ where this branch left git REF into build/contract-against.binpb, the baseline of `buf
breaking`. A git input (`.git#branch=main,subdir=proto`) cannot serve: Buf would find no googleapis
files beside it.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import grpc_tools
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
GEN = ROOT / "gen"
BUILD = ROOT / "build"
DESCRIPTOR = BUILD / "aiselector.pb"
BUF_GOOGLEAPIS = BUILD / "googleapis"
AGAINST_IMAGE = BUILD / "contract-against.binpb"
# google/api/*.proto and google/rpc/*.proto ship inside googleapis-common-protos.
GOOGLEAPIS = Path(annotations_pb2.__file__).resolve().parent.parent.parent
# google/protobuf/*.proto ship inside grpcio-tools.
WELL_KNOWN = Path(grpc_tools.__file__).resolve().parent / "_proto"
# Error detail types Envoy must know to print `google.rpc.Status` details as JSON.
EXTRA_FOR_ENVOY = ["google/rpc/status.proto", "google/rpc/error_details.proto"]


def run(args: list[str], proto_root: Path = PROTO) -> None:
    """Runs protoc with the include paths; exits on failure."""
    cmd = ["protoc", f"-I{proto_root}", f"-I{GOOGLEAPIS}", f"-I{WELL_KNOWN}", *args]
    if protoc.main(cmd) != 0:
        sys.exit(f"protoc failed: {' '.join(args)}")


def sources(proto_root: Path) -> list[str]:
    """The .proto files under `proto_root`, relative to it."""
    return sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))


def generate() -> None:
    """Writes gen/ (Python stubs) and build/aiselector.pb (the descriptor set Envoy loads)."""
    files = sources(PROTO)
    shutil.rmtree(GEN, ignore_errors=True)
    GEN.mkdir()
    BUILD.mkdir(exist_ok=True)
    run([f"--python_out={GEN}", f"--pyi_out={GEN}", f"--grpc_python_out={GEN}", *files])
    run(
        [
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={DESCRIPTOR}",
            *files,
            *EXTRA_FOR_ENVOY,
        ]
    )
    print(f"generated {len(files)} protos into {GEN.name}/ and {DESCRIPTOR.relative_to(ROOT)}")


def link_googleapis() -> None:
    """Links every googleapis file in build/aiselector.pb into build/googleapis for Buf."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR.read_bytes())
    shutil.rmtree(BUF_GOOGLEAPIS, ignore_errors=True)
    # Buf brings google/protobuf itself.
    for name in (f.name for f in fds.file if f.name.startswith(("google/api/", "google/rpc/"))):
        link = BUF_GOOGLEAPIS / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(GOOGLEAPIS / name)


def git(*args: str) -> bytes:
    """The output of a git command in this checkout; exits with git's message on failure."""
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=False)
    if done.returncode != 0:
        problem = done.stderr.decode().strip()
        sys.exit(f"git {args[0]} failed (set BUF_AGAINST to a git ref): {problem}")
    return done.stdout


def merge_base(ref: str) -> str:
    """The merge base of HEAD and `ref` (or `origin/<ref>`); HEAD itself when neither exists here,
    as in a checkout of one commit (CI): the contract is then compared with itself."""
    for candidate in (ref, f"origin/{ref}"):
        done = subprocess.run(
            ["git", "merge-base", "HEAD", candidate], cwd=ROOT, capture_output=True, check=False
        )
        if done.returncode == 0:
            return done.stdout.decode().strip()
    print(f"buf breaking: no git ref {ref!r} here; comparing the contract with HEAD")
    return git("rev-parse", "HEAD").decode().strip()


def build_against(ref: str) -> None:
    """Writes the descriptor set of proto/ where this checkout left `ref` (no network needed).

    The baseline is the merge base of HEAD and `ref`, so contract changes merged into `ref` since
    this branch forked are not taken for this branch's deletions; on `ref` itself it is HEAD.
    """
    base = merge_base(ref)
    archive = git("archive", "--format=tar", base, "proto")
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        root = Path(tmp) / "proto"
        run(
            [
                "--include_imports",
                "--include_source_info",
                f"--descriptor_set_out={AGAINST_IMAGE}",
                *sources(root),
            ],
            proto_root=root,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buf-against", metavar="REF", help="prepare Buf's inputs instead")
    args = parser.parse_args()
    if args.buf_against:
        link_googleapis()
        build_against(args.buf_against)
    else:
        generate()


if __name__ == "__main__":
    main()
