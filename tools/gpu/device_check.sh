#!/usr/bin/env bash
# One-shot build and check of segrel's core, its CUDA tests, the benchmarks and the `segrel` CLI on a GPU machine
# that has LibTorch (a PyTorch pip wheel with CUDA), a C++ compiler and CMake, but none of segrel's Debian 12
# dependencies and no network. Run from anywhere inside the repository:
#
#   bash tools/gpu/device_check.sh
#
# The Debian 12 packages the build needs (absl, DCMTK, nifticlib, nlohmann-json, libpng, zlib, GoogleTest and their
# runtime libraries) travel as .deb files in .gpu/debs/ (not committed: `apt-get download` of the packages in
# tools/gpu/debs.txt on a Debian 12 machine; carry .gpu with the working tree). They are unpacked into a sysroot,
# their CMake configs made relocatable, and segrel is configured against that sysroot and LibTorch's own CMake config.
#
# Steps: unpack the .debs -> find LibTorch (python3) -> pick -std (a test compile of <torch/torch.h>, C++17 else
# C++20) -> configure (-DSEGREL_BUILD_SERVER=OFF) -> build cuda_tests, lrp_bench, pipeline_bench, segrel ->
# nvidia-smi -> cuda_tests -> segrel analyze on CUDA and on the CPU, relevance shares compared -> lrp_bench on CUDA
# and on the CPU -> pipeline_bench on CUDA (and on the CPU if time is left). Each step has its own timeout inside a
# total budget; a failing run step does not stop the next ones; a failing configure or build prints the errors and
# stops. Everything printed is also in $OUT/device_check.log; each program's output is in $OUT/<step>.txt.
# Exit status: 0 all steps passed, 1 setup/configure/build failed, 3 some run step failed or timed out.
#
# Environment (all optional):
#   OUT                 where logs and outputs go (default /tmp/out)
#   SYSROOT, BUILD_DIR  default /tmp/sysroot, /tmp/gpubuild (kept: a second run on the same machine is incremental)
#   BUDGET_S            seconds for the whole script (default 460); steps are cut or skipped to stay inside it
#   JOBS                build jobs (default nproc)
#   PYTHON              python with torch (default: python3, then /opt/torch/.venv/bin/python3)
#   TORCH_CMAKE_PREFIX  LibTorch's CMake prefix (a folder holding Torch/TorchConfig.cmake, or that Torch folder) when
#                       no python with torch is there (dry run on Debian: /usr/lib/x86_64-linux-gnu/cmake/Torch)
#   TORCH_ROOT          LibTorch's root (include/, lib/); found from python or TORCH_CMAKE_PREFIX otherwise
#   CXX_STD             17 or 20: skip the detection
#   TORCH_SHIM=1        skip LibTorch's own CMake config; use a minimal one (headers + shared libraries). Used
#                       automatically when the configure with LibTorch's own config fails, or when the build
#                       fails for files that config names and the machine lacks (e.g. CUDA libraries).
#   TARGETS             targets to build (default "cuda_tests lrp_bench pipeline_bench segrel")
#   SKIP_RUN_HEAVY=1    lighter runs (dry runs on small machines): short lrp_bench, no CPU pipeline_bench
#   SKIP_STEPS          run steps to skip, e.g. "analyze_cpu pipeline_bench_cpu"
#   ANALYZE_EXTRA       more arguments for both `segrel analyze` runs, e.g. "--no-pictures"
#   SHARE_TOLERANCE     largest |CPU - CUDA| share difference that counts as agreement (default 0.01)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
LOG=$OUT/device_check.log
: >"$LOG"

SYSROOT=${SYSROOT:-/tmp/sysroot}
BUILD_DIR=${BUILD_DIR:-/tmp/gpubuild}
BUDGET_S=${BUDGET_S:-460}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
TARGETS=${TARGETS:-cuda_tests lrp_bench pipeline_bench segrel}
SKIP_RUN_HEAVY=${SKIP_RUN_HEAVY:-0}
SHARE_TOLERANCE=${SHARE_TOLERANCE:-0.01}
MODEL=models/ms-flair4
STUDY=data/ms-lesjak/patient19
ARCH=x86_64-linux-gnu
START=$(date +%s)
SUMMARY=()
FAILED_STEPS=()

main() {
  note "segrel device check: repo $ROOT, OUT=$OUT, SYSROOT=$SYSROOT, BUILD_DIR=$BUILD_DIR, budget ${BUDGET_S}s, $JOBS jobs"
  setup || { summary; return 1; }
  build || { summary; return 1; }
  run_checks
  summary
  ((${#FAILED_STEPS[@]} == 0)) || { note "failed steps: ${FAILED_STEPS[*]}"; return 3; }
}

# ---------------------------------------------------------------------------------------------------------------
# Helpers

elapsed() { echo $(($(date +%s) - START)); }
remaining() { echo $((BUDGET_S - $(elapsed))); }
note() { echo "[$(date +%H:%M:%S) +$(elapsed)s] $*"; }
banner() { echo; echo "=== [$(date +%H:%M:%S) +$(elapsed)s] $* ==="; }

# run_step NAME MAX_SECONDS COMMAND...: runs COMMAND with a timeout of MAX_SECONDS, cut to what is left of the
# budget; output to the terminal (and the log) and to $OUT/NAME.txt. Skipped when under 10 s are left. Returns
# COMMAND's status (124: timed out).
run_step() {
  local name=$1 max=$2
  shift 2
  local left limit
  left=$(($(remaining) - 3))
  limit=$((max < left ? max : left))
  banner "$name (timeout ${limit}s)"
  if [[ " ${SKIP_STEPS:-} " == *" $name "* ]]; then
    note "$name: SKIPPED (SKIP_STEPS)"
    SUMMARY+=("$(printf '%-22s %-12s' "$name" "skipped")")
    return 125
  fi
  if ((limit < 10)); then
    note "$name: SKIPPED, ${left}s of the budget left"
    SUMMARY+=("$(printf '%-22s %-12s' "$name" "skipped")")
    return 125
  fi
  local t0 rc
  t0=$(date +%s)
  echo "\$ $*"
  timeout -k 5 "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
  rc=${PIPESTATUS[0]}
  local dt=$(($(date +%s) - t0)) verdict=ok
  ((rc == 124 || rc == 137)) && verdict="TIMEOUT"
  ((rc != 0 && rc != 124 && rc != 137)) && verdict="FAILED($rc)"
  note "$name: $verdict in ${dt}s"
  [[ $verdict != ok ]] && FAILED_STEPS+=("$name")
  SUMMARY+=("$(printf '%-22s %-12s %5ss' "$name" "$verdict" "$dt")")
  return "$rc"
}

# Runs a built program with the sysroot's and LibTorch's libraries (a function, for use outside run_step).
with_libs() { "${LIBENV[@]}" "$@"; }

summary() {
  banner "summary (total $(elapsed)s of ${BUDGET_S}s)"
  local line
  for line in "${SUMMARY[@]}"; do echo "  $line"; done
}

# ---------------------------------------------------------------------------------------------------------------
# Setup: tools, sysroot, LibTorch, C++ standard, configure

find_tools() {
  # pip's cmake and ninja live next to the venv's python.
  local dir
  for dir in /opt/torch/.venv/bin /usr/local/cuda/bin; do
    [[ -d $dir && ":$PATH:" != *":$dir:"* ]] && PATH=$PATH:$dir
  done
  export PATH
  CXX=${CXX:-$(command -v g++ || command -v c++ || command -v clang++ || true)}
  CMAKE=$(command -v cmake || true)
  NINJA=$(command -v ninja || true)
  NVCC=$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1 || true)
  note "compiler: ${CXX:-MISSING} ($("${CXX:-false}" --version 2>/dev/null | head -1))"
  note "cmake:    ${CMAKE:-MISSING} ($("${CMAKE:-false}" --version 2>/dev/null | head -1))"
  note "ninja:    ${NINJA:-none, using make} ($("${NINJA:-false}" --version 2>/dev/null))"
  note "nvcc:     ${NVCC:-none} ($("${NVCC:-false}" --version 2>/dev/null | tail -2 | head -1))"
  note "glibc:    $(ldd --version 2>/dev/null | head -1); OS: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  [[ -n $CXX && -n $CMAKE ]] || { note "FATAL: no C++ compiler or no cmake"; return 1; }
}

unpack_debs() {
  local debs=(.gpu/debs/*.deb)
  [[ -e ${debs[0]} ]] || { note "FATAL: no .gpu/debs/*.deb in $ROOT (carry the .gpu folder)"; return 1; }
  local stamp=$SYSROOT/.unpacked
  if [[ -f $stamp && $(cat "$stamp") == "$(ls .gpu/debs | md5sum)" ]]; then
    note "sysroot $SYSROOT already unpacked from these ${#debs[@]} packages"
    return 0
  fi
  rm -rf "$SYSROOT"
  mkdir -p "$SYSROOT"
  local deb tmp
  for deb in "${debs[@]}"; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$SYSROOT" || { note "FATAL: dpkg-deb -x $deb failed"; return 1; }
    else
      tmp=$(mktemp -d)
      (cd "$tmp" && ar x "$ROOT/$deb" && tar -xf data.tar.* -C "$SYSROOT") || { note "FATAL: cannot unpack $deb"; return 1; }
      rm -rf "$tmp"
    fi
  done
  # Absolute symlinks (e.g. libz.so -> /lib/x86_64-linux-gnu/libz.so.1.2.13) point into the sysroot instead.
  local link target
  while IFS= read -r link; do
    target=$(readlink "$link")
    [[ $target == /* ]] && ln -sfn "$SYSROOT$target" "$link"
  done < <(find "$SYSROOT" -type l)
  # Debian 12 still ships some libraries in /lib: make them visible in /usr/lib too.
  if [[ -d $SYSROOT/lib/$ARCH ]]; then
    for lib in "$SYSROOT/lib/$ARCH"/*; do
      [[ -e $SYSROOT/usr/lib/$ARCH/$(basename "$lib") ]] || ln -s "$lib" "$SYSROOT/usr/lib/$ARCH/"
    done
  fi
  # DCMTK's exported targets name libraries by absolute /usr paths, and `nsl` (not in glibc >= 2.34; DCMTK's
  # libraries do not need it at run time): point them into the sysroot, drop nsl.
  local libdir=$SYSROOT/usr/lib/$ARCH
  sed -i -e "s#\([\";]\)/usr/lib/$ARCH/#\1$libdir/#g" -e 's#;nsl;#;#' "$libdir"/cmake/dcmtk/DCMTKTargets.cmake
  # Unversioned names for the libraries named there whose -dev package is not shipped (libxml2.so, libtiff.so, ...).
  local name so
  for name in $(grep -o "$libdir/lib[A-Za-z0-9_+-]*\.so\b" "$libdir"/cmake/dcmtk/DCMTKTargets.cmake | sort -u); do
    [[ -e $name ]] && continue
    so=$(ls "$name".[0-9]* 2>/dev/null | head -1)
    [[ -n $so ]] && ln -s "$(basename "$so")" "$name"
  done
  ls .gpu/debs | md5sum >"$stamp"
  note "unpacked ${#debs[@]} packages into $SYSROOT ($(du -sh "$SYSROOT" | cut -f1))"
}

find_torch() {
  PYTHON=${PYTHON:-}
  if [[ -z $PYTHON ]]; then
    local candidate
    for candidate in python3 /opt/torch/.venv/bin/python3; do
      if command -v "$candidate" >/dev/null && "$candidate" -c 'import torch' 2>/dev/null; then
        PYTHON=$candidate
        break
      fi
    done
  fi
  TORCH_ABI=1
  if [[ -n $PYTHON ]]; then
    local info
    info=$("$PYTHON" - <<'EOF'
import os, torch
print(os.path.dirname(torch.__file__))
print(torch.utils.cmake_prefix_path)
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"cuda available {torch.cuda.is_available()}, devices {torch.cuda.device_count()}")
EOF
    ) || { note "FATAL: $PYTHON cannot report torch"; return 1; }
    TORCH_ROOT=${TORCH_ROOT:-$(sed -n 1p <<<"$info")}
    TORCH_CMAKE_PREFIX=${TORCH_CMAKE_PREFIX:-$(sed -n 2p <<<"$info")}
    TORCH_ABI=$(sed -n 3p <<<"$info")
    note "python: $PYTHON: $(sed -n 4p <<<"$info")"
  fi
  if [[ -z ${TORCH_CMAKE_PREFIX:-} ]]; then
    note "FATAL: no python with torch and no TORCH_CMAKE_PREFIX"
    return 1
  fi
  # TORCH_CMAKE_PREFIX may be the Torch folder itself.
  if [[ -f $TORCH_CMAKE_PREFIX/TorchConfig.cmake ]]; then
    TORCH_DIR=$TORCH_CMAKE_PREFIX
  else
    TORCH_DIR=$TORCH_CMAKE_PREFIX/Torch
  fi
  [[ -f $TORCH_DIR/TorchConfig.cmake ]] || { note "FATAL: no TorchConfig.cmake in $TORCH_DIR"; return 1; }
  if [[ -z ${TORCH_ROOT:-} ]]; then  # the nearest folder above the config with include/torch/csrc/api/include
    TORCH_ROOT=$TORCH_DIR
    while [[ $TORCH_ROOT != / && ! -d $TORCH_ROOT/include/torch/csrc/api/include ]]; do TORCH_ROOT=$(dirname "$TORCH_ROOT"); done
  fi
  TORCH_LIB_DIR=
  local dir
  for dir in "$TORCH_ROOT/lib" "$TORCH_ROOT/lib/$ARCH"; do
    [[ -e $dir/libtorch.so ]] && TORCH_LIB_DIR=$dir && break
  done
  [[ -n $TORCH_LIB_DIR ]] || { note "FATAL: no libtorch.so under $TORCH_ROOT/lib"; return 1; }
  note "LibTorch: config $TORCH_DIR, root $TORCH_ROOT, libraries $TORCH_LIB_DIR, _GLIBCXX_USE_CXX11_ABI=$TORCH_ABI"
  note "LibTorch CUDA libraries: $(cd "$TORCH_LIB_DIR" && ls libtorch_cuda*.so libc10_cuda.so 2>/dev/null | tr '\n' ' ')"
  if [[ $TORCH_ABI != 1 ]]; then
    note "WARNING: LibTorch uses the old C++ ABI (_GLIBCXX_USE_CXX11_ABI=0); Debian's absl/DCMTK use the new one:" \
      "expect undefined references to std::__cxx11 symbols at link time"
  fi
}

# The standard LibTorch's headers need: C++17, else C++20 (a syntax-only compile of <torch/torch.h>).
pick_std() {
  if [[ -n ${CXX_STD:-} ]]; then
    note "C++ standard: $CXX_STD (CXX_STD)"
    return 0
  fi
  local std t0
  for std in 17 20; do
    t0=$(date +%s)
    if echo '#include <torch/torch.h>' | timeout 120 "$CXX" -std=c++$std -fsyntax-only -x c++ - \
      -I"$TORCH_ROOT/include" -I"$TORCH_ROOT/include/torch/csrc/api/include" -D_GLIBCXX_USE_CXX11_ABI="$TORCH_ABI" \
      >"$OUT/std_c++$std.txt" 2>&1; then
      CXX_STD=$std
      note "C++ standard: $std (<torch/torch.h> compiles with -std=c++$std, $(($(date +%s) - t0))s)"
      return 0
    fi
    note "<torch/torch.h> does not compile with -std=c++$std ($(($(date +%s) - t0))s):"
    grep -m 8 -E "error|Error" "$OUT/std_c++$std.txt"
  done
  CXX_STD=17
  note "WARNING: <torch/torch.h> compiles with neither; trying C++17 anyway"
}

write_torch_shim() {
  local dir=$BUILD_DIR.torchshim
  mkdir -p "$dir"
  local libs=() name
  for name in torch_cuda c10_cuda torch torch_cpu c10; do
    [[ -e $TORCH_LIB_DIR/lib$name.so ]] && libs+=("$TORCH_LIB_DIR/lib$name.so")
  done
  local joined
  joined=$(IFS=,; echo "${libs[*]}")
  cat >"$dir/TorchConfig.cmake" <<EOF
# Minimal TorchConfig.cmake written by tools/gpu/device_check.sh: LibTorch's headers and shared libraries only
# (every library linked even if unused, so that the CUDA backend registers itself).
set(TORCH_INSTALL_PREFIX "$TORCH_ROOT")
set(TORCH_INCLUDE_DIRS "$TORCH_ROOT/include;$TORCH_ROOT/include/torch/csrc/api/include")
set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=$TORCH_ABI")
if(NOT TARGET torch)
  add_library(torch INTERFACE IMPORTED)
  set_target_properties(torch PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "\${TORCH_INCLUDE_DIRS}"
    INTERFACE_COMPILE_OPTIONS "-D_GLIBCXX_USE_CXX11_ABI=$TORCH_ABI"
    INTERFACE_LINK_LIBRARIES "-Wl,--no-as-needed,$joined,--as-needed;-Wl,-rpath,$TORCH_LIB_DIR")
endif()
set(TORCH_LIBRARIES torch)
set(Torch_FOUND TRUE)
EOF
  echo "$dir"
}

configure() {
  local torch_dir=$1 log=$OUT/configure.txt
  local generator=()
  [[ -n $NINJA ]] && generator=(-G Ninja)
  # A cache from another generator or LibTorch config cannot be reused.
  if [[ -f $BUILD_DIR/CMakeCache.txt ]] && ! grep -q "^Torch_DIR:[A-Z]*=$torch_dir\$" "$BUILD_DIR/CMakeCache.txt"; then
    rm -rf "$BUILD_DIR"
  fi
  local cuda=()
  if [[ -n $NVCC ]]; then
    cuda=(-DCMAKE_CUDA_COMPILER="$NVCC" -DCUDAToolkit_ROOT="$(dirname "$(dirname "$NVCC")")"
          -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}")
  fi
  local libdir=$SYSROOT/usr/lib/$ARCH
  local args=("${generator[@]}" -S "$ROOT" -B "$BUILD_DIR"
    -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_CXX_COMPILER="$CXX"
    -DCMAKE_CXX_STANDARD="$CXX_STD"
    -DSEGREL_BUILD_SERVER=OFF -DSEGREL_BUILD_TESTS=ON -DSEGREL_BUILD_BENCH=ON
    "-DCMAKE_PREFIX_PATH=$SYSROOT/usr;$TORCH_CMAKE_PREFIX"
    -DTorch_DIR="$torch_dir"
    "-DCMAKE_EXE_LINKER_FLAGS=-L$libdir -Wl,-rpath-link,$libdir -Wl,-rpath-link,$SYSROOT/lib/$ARCH -Wl,-rpath-link,$TORCH_LIB_DIR"
    "-DCMAKE_SHARED_LINKER_FLAGS=-L$libdir -Wl,-rpath-link,$libdir"
    -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5
    "${cuda[@]}")
  echo "\$ cmake ${args[*]}"
  TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} timeout -k 5 "$(( $(remaining) < 240 ? $(remaining) : 240 ))" \
    "$CMAKE" "${args[@]}" >"$log" 2>&1
}

print_configure_errors() {
  grep -n -E -A6 "CMake Error|error:" "$OUT/configure.txt" | head -60 | cut -c1-400
  echo "--- last lines of the configure log ($OUT/configure.txt):"
  tail -15 "$OUT/configure.txt" | cut -c1-400
}

# Where every dependency was found: all must lie under the sysroot (LibTorch excepted).
check_resolved() {
  local cache=$BUILD_DIR/CMakeCache.txt var value bad=0
  note "resolved dependencies (CMakeCache):"
  for var in Torch_DIR absl_DIR DCMTK_DIR GTest_DIR nlohmann_json_DIR NIFTI_INCLUDE_DIR NIFTI2_LIBRARY ZNZ_LIBRARY \
    ZLIB_INCLUDE_DIR ZLIB_LIBRARY_RELEASE PNG_PNG_INCLUDE_DIR PNG_LIBRARY_RELEASE CMAKE_CXX_STANDARD; do
    value=$(grep -m1 "^$var:" "$cache" | cut -d= -f2-)
    printf '  %-22s %s\n' "$var" "${value:-?}"
    if [[ $var != Torch_DIR && $var != CMAKE_CXX_STANDARD && -n $value && $value != "$SYSROOT"* ]]; then
      echo "  ^ WARNING: not under $SYSROOT"
      bad=1
    fi
  done
  local outside
  outside=$(grep -h -o '"/usr/lib[^";]*' "$SYSROOT/usr/lib/$ARCH/cmake/dcmtk/DCMTKTargets.cmake" | sort -u | tr '\n' ' ')
  [[ -n $outside ]] && { echo "  WARNING: DCMTK still names $outside"; bad=1; }
  ((bad == 0)) && note "all dependencies resolved under $SYSROOT"
  return 0
}

setup() {
  banner "setup"
  find_tools || return 1
  unpack_debs || return 1
  find_torch || return 1
  LIBDIRS=$SYSROOT/usr/lib/$ARCH:$SYSROOT/lib/$ARCH
  RUN_LD_LIBRARY_PATH=$LIBDIRS:$TORCH_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  DCMDICTPATH=$SYSROOT/usr/share/libdcmtk17/dicom.dic:$SYSROOT/usr/share/libdcmtk17/private.dic
  # Only the programs built here run with these (LibTorch's and the system's own tools keep their libraries).
  LIBENV=(env "LD_LIBRARY_PATH=$RUN_LD_LIBRARY_PATH" "DCMDICTPATH=$DCMDICTPATH")
  pick_std
  banner "configure"
  local t0 torch_dir=$TORCH_DIR
  t0=$(date +%s)
  [[ ${TORCH_SHIM:-0} == 1 ]] && torch_dir=$(write_torch_shim)
  if ! configure "$torch_dir"; then
    if [[ $torch_dir == "$TORCH_DIR" ]]; then
      note "configure with LibTorch's own CMake config FAILED ($(($(date +%s) - t0))s):"
      print_configure_errors
      note "retrying with a minimal TorchConfig (headers + shared libraries)"
      rm -rf "$BUILD_DIR"
      cp "$OUT/configure.txt" "$OUT/configure_torchconfig.txt"
      torch_dir=$(write_torch_shim)
      configure "$torch_dir" || {
        note "FATAL: configure failed again"
        print_configure_errors
        SUMMARY+=("configure              FAILED")
        return 1
      }
    else
      note "FATAL: configure failed"
      print_configure_errors
      SUMMARY+=("configure              FAILED")
      return 1
    fi
  fi
  grep -E "Caffe2|Torch|CUDA|warning" "$OUT/configure.txt" | grep -v "^--.*Looking for\|^--.*Performing" | head -12
  TORCH_CONFIG_USED=$torch_dir
  note "configure ok in $(($(date +%s) - t0))s (LibTorch config: $torch_dir)"
  SUMMARY+=("$(printf '%-22s %-12s %5ss' configure "ok" "$(($(date +%s) - t0))")")
  check_resolved
}

# ---------------------------------------------------------------------------------------------------------------
# Build

# Builds $TARGETS in $BUILD_DIR; on failure prints the first errors. Returns the build's status.
build_once() {
  local limit=$(($(remaining) - 90))
  ((limit > 420)) && limit=420
  banner "build: $TARGETS in $BUILD_DIR (-j$JOBS, timeout ${limit}s)"
  ((limit < 30)) && { note "FATAL: no time left to build"; return 1; }
  local t0 rc dt
  t0=$(date +%s)
  # shellcheck disable=SC2086  # TARGETS is a list
  timeout -k 5 "$limit" "$CMAKE" --build "$BUILD_DIR" -j "$JOBS" --target $TARGETS >"$OUT/build.txt" 2>&1
  rc=$?
  dt=$(($(date +%s) - t0))
  if ((rc != 0)); then
    ((rc == 124 || rc == 137)) && note "build TIMED OUT after ${dt}s (a rerun on the same machine is incremental)"
    note "BUILD FAILED (rc $rc, ${dt}s); first errors (full log: $OUT/build.txt):"
    echo "-----------------------------------------------------------------------------------------------------"
    grep -n -E "error:|error :|undefined reference|cannot find|FAILED:|fatal|ld returned|multiple definition|No rule|missing and no known rule" \
      "$OUT/build.txt" | head -60 | cut -c1-400
    echo "-----------------------------------------------------------------------------------------------------"
    echo "--- last lines of the build log (long lines cut):"
    tail -20 "$OUT/build.txt" | cut -c1-400
    SUMMARY+=("$(printf '%-22s %-12s %5ss' build "FAILED($rc)" "$dt")")
    return 1
  fi
  note "build ok in ${dt}s ($(grep -c 'warning:' "$OUT/build.txt") warnings; log $OUT/build.txt)"
  SUMMARY+=("$(printf '%-22s %-12s %5ss' build ok "$dt")")
}

build() {
  if ! build_once; then
    # Files LibTorch's own config names that this machine lacks (CUDA libraries of another toolkit layout): the
    # minimal config needs none of them. Compile errors stop here.
    if [[ $TORCH_CONFIG_USED == "$TORCH_DIR" ]] && (($(remaining) > 200)) &&
      grep -q -E "missing and no known rule to make it|cannot find -l|No rule to make target" "$OUT/build.txt"; then
      note "the link needs files LibTorch's CMake config names and this machine lacks; retrying with a minimal" \
        "TorchConfig in $BUILD_DIR-shim"
      cp "$OUT/build.txt" "$OUT/build_torchconfig.txt"
      BUILD_DIR=$BUILD_DIR-shim
      TORCH_CONFIG_USED=$(write_torch_shim)
      configure "$TORCH_CONFIG_USED" || { note "FATAL: configure failed"; print_configure_errors; return 1; }
      build_once || return 1
    else
      return 1
    fi
  fi
  BIN_CUDA_TESTS=$BUILD_DIR/tests/cuda_tests
  BIN_LRP_BENCH=$BUILD_DIR/bench/lrp_bench
  BIN_PIPELINE_BENCH=$BUILD_DIR/bench/pipeline_bench
  BIN_SEGREL=$BUILD_DIR/tools/segrel
  local missing
  missing=$(with_libs ldd "$BIN_SEGREL" 2>&1 | grep "not found")
  if [[ -n $missing ]]; then
    note "WARNING: segrel's libraries not found at run time:"
    echo "$missing"
  fi
  note "where segrel's main libraries load from:"
  with_libs ldd "$BIN_SEGREL" | grep -E "absl_status\.|dcmdata|nifti2|znz|png16|xml2|icuuc|libz\.|tiff\.|libtorch\.|torch_cpu|torch_cuda|c10_cuda|cudart|libstdc" |
    awk '{print "  " $1 " => " $3}'
  with_libs ldd "$BIN_SEGREL" | grep -q "torch_cuda" ||
    note "WARNING: segrel does not load libtorch_cuda.so: LibTorch will see no CUDA device"
}

# ---------------------------------------------------------------------------------------------------------------
# Runs

run_checks() {
  local threads=$JOBS analyze_args light=()
  # shellcheck disable=SC2054  # the commas separate composites inside one argument
  [[ $SKIP_RUN_HEAVY == 1 ]] && light=(--repeats 1 --naive-voxels 1 --composites epsilon,epsilon-plus)
  analyze_args=(analyze --model "$MODEL" --study "$STUDY" --reference "$STUDY/GOLD_STANDARD.nii.gz" --lesions
                --ablation ${ANALYZE_EXTRA:-})

  run_step nvidia-smi 20 nvidia-smi
  local gpus
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU")
  run_step cuda_tests 150 "${LIBENV[@]}" "$BIN_CUDA_TESTS"
  if ((gpus > 0)) && grep -q "no CUDA device" "$OUT/cuda_tests.txt" 2>/dev/null; then
    note "WARNING: nvidia-smi lists $gpus GPU(s) but the tests saw no CUDA device (libtorch_cuda not loaded?)"
    SUMMARY+=("$(printf '%-22s %-12s' cuda_tests "SKIPPED ALL (no CUDA seen)")")
  fi
  run_step analyze_cuda 150 "${LIBENV[@]}" "$BIN_SEGREL" "${analyze_args[@]}" --device cuda --out "$OUT/analyze_cuda"
  if grep -q "FAILED(139)" <<<"${SUMMARY[*]}" && command -v cuda-gdb >/dev/null; then
    # A crash: where, from cuda-gdb (it debugs host code too; there is no gdb on the machine).
    run_step analyze_backtrace 120 "${LIBENV[@]}" cuda-gdb -batch -ex run -ex bt -ex "info sharedlibrary" --args \
      "$BIN_SEGREL" "${analyze_args[@]}" --device cuda --out "$OUT/analyze_backtrace"
  fi
  run_step analyze_cpu 200 "${LIBENV[@]}" "$BIN_SEGREL" "${analyze_args[@]}" --device cpu --threads "$threads" \
    --out "$OUT/analyze_cpu"
  if [[ -f $OUT/analyze_cpu/relevance.json && -f $OUT/analyze_cuda/relevance.json ]]; then
    run_step compare_relevance 30 python3 tools/gpu/compare_relevance.py "$OUT/analyze_cpu/relevance.json" \
      "$OUT/analyze_cuda/relevance.json" "$SHARE_TOLERANCE"
  else
    banner "compare_relevance"
    note "compare_relevance: SKIPPED, a relevance.json is missing (analyze_cpu or analyze_cuda failed)"
    SUMMARY+=("$(printf '%-22s %-12s' compare_relevance "skipped")")
  fi
  run_step lrp_bench_cuda 120 "${LIBENV[@]}" "$BIN_LRP_BENCH" --device cuda "${light[@]}"
  run_step lrp_bench_cpu 150 "${LIBENV[@]}" "$BIN_LRP_BENCH" --device cpu --threads "$threads" "${light[@]}"
  run_step pipeline_bench_cuda 150 "${LIBENV[@]}" "$BIN_PIPELINE_BENCH" --device cuda --threads "$threads" \
    --out "$OUT/pipeline_bench_cuda"
  if [[ $SKIP_RUN_HEAVY != 1 ]] && (($(remaining) > 100)); then
    run_step pipeline_bench_cpu 120 "${LIBENV[@]}" "$BIN_PIPELINE_BENCH" --device cpu --threads "$threads" \
      --out "$OUT/pipeline_bench_cpu"
  else
    SUMMARY+=("$(printf '%-22s %-12s' pipeline_bench_cpu "skipped")")
  fi

  # The results again, together, at the end of the output.
  banner "results"
  [[ -f $OUT/cuda_tests.txt ]] && grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests? ran|FAILED TEST" "$OUT/cuda_tests.txt"
  [[ -f $OUT/compare_relevance.txt ]] && grep -v "^\$ " "$OUT/compare_relevance.txt" | head -30
  local f
  for f in lrp_bench_cuda lrp_bench_cpu pipeline_bench_cuda pipeline_bench_cpu; do
    [[ -f $OUT/$f.txt ]] || continue
    echo "--- $f"
    grep -v "^\$ \|explained forward pass keeps" "$OUT/$f.txt" | head -24
  done
}

main 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
