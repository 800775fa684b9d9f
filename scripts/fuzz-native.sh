#!/usr/bin/env bash
# libFuzzer, with AddressSanitizer and UndefinedBehaviorSanitizer, over the addon's code that reads
# bytes from disk (RELIABILITY.md P1, "Native parsers under libFuzzer" in docs/reliability.md):
# each harness of native/fuzz/ is built against native/src/ directly (no Node, no N-API) and run
# for a fixed time, one after the other, from the committed seeds (native/fuzz/seeds/) plus seeds
# cut from a freshly written log when the project is built (scripts/fuzz-native-seeds.mjs).
#
#   scripts/fuzz-native.sh [--seconds N] [--only HARNESS] [--corpus DIR] [--coverage]
#
# --seconds N     time per harness (default 60)
# --only NAME     one harness: crc32c, count_valid, floor or entries_call
# --corpus DIR    keep what each harness finds in DIR/<harness> and start from it next time
#                 (default: a temporary directory, removed at the end)
# --coverage      afterwards, line and region coverage of the parser sources over the corpora
#
# Prints one line per harness (executions, their rate, libFuzzer's edge coverage, corpus size,
# crashes) and exits non-zero if any harness crashed, leaked, timed out or broke a property; the
# working directory is then kept, with the input that did it (libFuzzer's crash-*/leak-*/timeout-*
# files), and named. Installs clang with apt-get if no clang++ on the PATH can link -fsanitize=fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(crc32c count_valid floor entries_call)
seconds=60 only="" corpus="" coverage=0
usage="usage: $0 [--seconds N] [--only crc32c|count_valid|floor|entries_call] [--corpus DIR] [--coverage]"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --corpus) corpus="$2"; shift 2 ;;
    --coverage) coverage=1; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "$0: --seconds needs a positive integer, got '$seconds'" >&2; exit 2; }
harnesses=("${all[@]}")
if [[ -n "$only" ]]; then
  [[ " ${all[*]} " == *" $only "* ]] || { echo "$usage" >&2; exit 2; }
  harnesses=("$only")
fi

work="$(mktemp -d -t eddy-fuzz-native-XXXXXX)"
keep=0
cleanup() { if [[ "$keep" == 0 ]]; then rm -rf "$work"; fi; }
trap cleanup EXIT

# A clang whose runtime has libFuzzer: Debian ships it apart from the compiler (libclang-rt-N-dev).
links_fuzzer() {
  printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' \
    > "$work/probe.cc"
  "$1" -fsanitize=fuzzer,address,undefined "$work/probe.cc" -o "$work/probe" 2> /dev/null
}
cxx=""
find_clang() {
  for candidate in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    if command -v "$candidate" > /dev/null && links_fuzzer "$candidate"; then
      cxx="$candidate"
      return 0
    fi
  done
  return 1
}
if ! find_clang; then
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get > /dev/null; then
    echo "$0: needs clang++ with libFuzzer (Debian/Ubuntu: apt-get install clang-14 libclang-rt-14-dev)" >&2
    exit 1
  fi
  echo "installing clang-14 and its libFuzzer runtime" >&2
  apt-get install -y clang-14 libclang-rt-14-dev > "$work/apt.log" 2>&1 ||
    { cat "$work/apt.log" >&2; exit 1; }
  find_clang || { echo "$0: clang-14 installed but cannot link -fsanitize=fuzzer" >&2; exit 1; }
fi
# llvm-profdata and llvm-cov of the same version as the compiler, for --coverage.
suffix="${cxx#clang++}"
echo "compiler: $("$cxx" --version | head -n 1)" >&2

sources=(native/src/entries.cc native/src/crc32c.cc)
flags=(-std=c++17 -g -O1 -Wall -Wextra -Werror -Inative/src)
for h in "${harnesses[@]}"; do
  # -fno-sanitize-recover: undefined behaviour aborts, so libFuzzer keeps the input as a crash.
  "$cxx" "${flags[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    "native/fuzz/${h}_fuzz.cc" "${sources[@]}" -o "$work/$h"
done

# Seeds cut from a real log need the built log and addon; the committed ones always exist.
if [[ -f dist/src/log/index.js && -f build/Release/eddy_native.node ]]; then
  node scripts/fuzz-native-seeds.mjs --out "$work/seeds" >&2
else
  echo "no build (npm run build, node-gyp): fuzzing from the committed seeds only" >&2
fi

status=0
corpora="${corpus:-$work/corpus}"
printf '%-13s %8s %14s %10s %6s %7s %7s %s\n' harness seconds executions exec/s cov ft corpus crashes
for h in "${harnesses[@]}"; do
  mkdir -p "$corpora/$h" "$work/seeds/$h"
  log="$work/$h.log"
  rc=0
  # -use_value_profile: comparisons guide the mutations (a start that fits the mapping, a key
  # between two stored ones). -timeout 10: no input here should take a fraction of that.
  "$work/$h" -max_total_time="$seconds" -print_final_stats=1 -use_value_profile=1 -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$work/$h-" "$corpora/$h" "native/fuzz/seeds/$h" "$work/seeds/$h" \
    > "$log" 2>&1 || rc=$?
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
  # The last status line: "#N DONE cov: C ft: F corp: K/Bb ...".
  last="$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -n 1 || true)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")"
  units="$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<< "$last")"
  artifacts=("$work/$h"-*)
  crashes=0
  if [[ "$rc" != 0 || -e "${artifacts[0]}" ]]; then
    crashes=1
    status=1
    keep=1
  fi
  printf '%-13s %8s %14s %10s %6s %7s %7s %s\n' "$h" "$seconds" "${executions:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "${units:-?}" "$crashes"
  if [[ "$crashes" != 0 ]]; then
    grep -E 'ERROR|property failed|SUMMARY|^==|runtime error' "$log" | head -n 20 >&2 || true
    echo "$h: exit $rc; log $log; inputs: ${artifacts[*]}" >&2
  fi
done

if [[ "$coverage" == 1 ]]; then
  # Source-based coverage of the parsers over every corpus: a harness rebuilt with profiling (no
  # sanitizers, so its counters are the code's own) runs each corpus once (-runs=0).
  profiles=() binaries=()
  for h in "${harnesses[@]}"; do
    "$cxx" "${flags[@]}" -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
      "native/fuzz/${h}_fuzz.cc" "${sources[@]}" -o "$work/$h.cov"
    LLVM_PROFILE_FILE="$work/$h.profraw" "$work/$h.cov" -runs=0 "$corpora/$h" "native/fuzz/seeds/$h" \
      "$work/seeds/$h" > /dev/null 2>&1
    profiles+=("$work/$h.profraw")
    binaries+=("$work/$h.cov")
  done
  "llvm-profdata$suffix" merge -sparse "${profiles[@]}" -o "$work/all.profdata"
  # llvm-cov takes the first binary plainly and every other one after -object.
  others=()
  for binary in "${binaries[@]:1}"; do others+=(-object "$binary"); done
  # The harnesses' own functions share names across binaries ("mismatched data" warnings);
  # the parser sources are compiled alike in each, so their counts add up.
  "llvm-cov$suffix" report "${binaries[0]}" "${others[@]}" -instr-profile="$work/all.profdata" "${sources[@]}" \
    2> "$work/llvm-cov.log" || { cat "$work/llvm-cov.log" >&2; exit 1; }
fi

if [[ "$keep" == 1 ]]; then echo "kept $work" >&2; fi
exit "$status"
