#!/usr/bin/env bash
# Fails (exit 1, naming the files) when a C++ source under version control does not follow .clang-format.
# Usage: check_format.sh SOURCE_DIR [CLANG_FORMAT]
set -euo pipefail
cd "$1"
clang_format=${2:-clang-format}
unformatted=()
while IFS= read -r file; do
  "$clang_format" --style=file --dry-run -Werror "$file" > /dev/null 2>&1 || unformatted+=("$file")
done < <(git ls-files -co --exclude-standard '*.h' '*.cc')
if [ ${#unformatted[@]} -gt 0 ]; then
  echo "not formatted (clang-format -i FILE):" >&2
  printf '  %s\n' "${unformatted[@]}" >&2
  exit 1
fi
echo "check_format: every C++ file follows .clang-format"
