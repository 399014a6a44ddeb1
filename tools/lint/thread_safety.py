#!/usr/bin/env python3
"""Checks the lock annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED, ...) with clang's -Wthread-safety.

The build uses gcc, which ignores the annotations; this runs clang++ -fsyntax-only with -Werror=thread-safety over
every source file of the build (compile_commands.json) that uses them or includes a header that does. Prints each
file it checks and every diagnostic; exits 1 when clang reports one, 0 otherwise.
Usage: thread_safety.py BUILD_DIR [CLANG++]
"""
import json
import pathlib
import re
import shlex
import subprocess
import sys

ANNOTATION = re.compile(r"ABSL_(GUARDED_BY|PT_GUARDED_BY|EXCLUSIVE_LOCKS_REQUIRED|SHARED_LOCKS_REQUIRED|LOCKS_EXCLUDED)")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)
# gcc options clang does not take, and the outputs of a real compile.
DROP = {"-MD", "-MMD"}
DROP_WITH_VALUE = {"-o", "-MF", "-MT", "-MQ"}


def annotated_headers(source_dir):
    return {str(path.relative_to(source_dir)) for folder in ("core", "server")
            for path in (source_dir / folder).rglob("*.h") if ANNOTATION.search(path.read_text(errors="replace"))}


def uses_annotations(path, headers):
    text = path.read_text(errors="replace")
    return bool(ANNOTATION.search(text)) or any(include in headers for include in INCLUDE.findall(text))


def clang_command(entry, clang):
    arguments = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    command, skip = [clang], False
    for argument in arguments[1:]:
        if skip:
            skip = False
            continue
        if argument in DROP_WITH_VALUE:
            skip = True
            continue
        if argument in DROP or argument == "-c":
            continue
        command.append(argument)
    # Other warnings (gcc's -Werror build may not see them) are reported but only thread safety fails the check.
    return command + ["-fsyntax-only", "-Wthread-safety", "-Wno-unknown-warning-option",
                      "-Wno-unused-command-line-argument", "-Wno-error", "-Werror=thread-safety"]


def main():
    build_dir = pathlib.Path(sys.argv[1])
    clang = sys.argv[2] if len(sys.argv) > 2 else "clang++"
    source_dir = pathlib.Path(__file__).resolve().parents[2]
    headers = annotated_headers(source_dir)
    entries = json.loads((build_dir / "compile_commands.json").read_text())
    checked, failed = 0, 0
    seen = set()
    for entry in entries:
        path = pathlib.Path(entry["file"])
        try:
            relative = path.resolve().relative_to(source_dir)
        except ValueError:
            continue  # generated code
        if relative.parts[0] not in ("core", "server") or path in seen:
            continue
        if not uses_annotations(path, headers):
            continue
        seen.add(path)
        command = clang_command(entry, clang)
        result = subprocess.run(command, cwd=entry["directory"], capture_output=True, text=True)
        checked += 1
        diagnostics = [line for line in result.stderr.splitlines() if "thread-safety" in line or "error:" in line]
        print(f"{relative}: {'ok' if result.returncode == 0 else 'FAILED'}")
        if result.returncode != 0:
            failed += 1
            print(result.stderr, file=sys.stderr)
        elif diagnostics:
            print("\n".join(diagnostics), file=sys.stderr)
    print(f"thread_safety: {checked} files checked with {clang} -Wthread-safety, {failed} with errors")
    return 1 if failed or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
