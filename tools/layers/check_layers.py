#!/usr/bin/env python3
"""Checks that core/ is a one-way chain of folders: each folder includes only headers of the folders below it.

The chain (core/CMakeLists.txt, README "Layout"): common → volume → io; common → graph → lrp; model above io and lrp;
analysis → report → pipeline on top. core/ includes nothing of the network layers (server/, client/, proto/, gRPC)
or of tools/; DCMTK headers appear only in core/io, ONNX's and protobuf's only in core/graph/onnx. Prints every include that breaks a rule and exits 1; exits 0
when there is none. Usage: check_layers.py [SOURCE_DIR]
"""
import pathlib
import re
import sys

# The folders each folder may include (besides itself), with everything below them.
BELOW = {
    "common": [],
    "volume": ["common"],
    "io": ["volume"],
    "graph": ["common"],
    "lrp": ["graph"],
    "model": ["io", "lrp"],
    "analysis": ["model"],
    "report": ["analysis"],
    "pipeline": ["report"],
}
FORBIDDEN_OUTSIDE_CORE = ("server/", "client/", "proto/", "tools/", "segrel/v1/", "grpc")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]')


def allowed(folder):
    seen, stack = set(), [folder]
    while stack:
        for below in BELOW[stack.pop()]:
            if below not in seen:
                seen.add(below)
                stack.append(below)
    return seen | {folder}


def problems(source_dir):
    core = source_dir / "core"
    found = []
    for path in sorted(core.rglob("*")):
        if path.suffix not in (".h", ".cc"):
            continue
        relative = path.relative_to(core)
        folder = relative.parts[0] if len(relative.parts) > 1 else None
        if folder is not None and folder not in BELOW:
            found.append(f"core/{relative}: folder core/{folder} is not in the layering (tools/layers/check_layers.py)")
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            header = match.group(1)
            where = f"core/{relative}:{number}: #include {header}"
            if header.startswith(FORBIDDEN_OUTSIDE_CORE):
                found.append(f"{where}: core/ must not use the network layers or tools/")
            elif header.startswith("dcmtk/") and folder != "io":
                found.append(f"{where}: only core/io may use DCMTK")
            elif header.startswith(("onnx/", "google/protobuf")) and relative.parts[:2] != ("graph", "onnx"):
                found.append(f"{where}: only core/graph/onnx may use ONNX's schema and protobuf")
            elif header.startswith("core/"):
                target = header.split("/")[1]
                if folder is None:
                    continue
                if target not in BELOW:
                    found.append(f"{where}: core/{target} is not in the layering")
                elif target not in allowed(folder):
                    found.append(f"{where}: core/{folder} is below core/{target} and must not include it")
    return found


def main():
    source_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
    found = problems(source_dir)
    for problem in found:
        print(problem, file=sys.stderr)
    if found:
        print(f"check_layers: {len(found)} includes break the layering of core/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
