#!/usr/bin/env bash
# Hours-long reliability runs (issue 7): the checks of test/reliability/ at soak sizes, repeated
# until the time is up, then one table of everything they found (scripts/reliability-table.mjs).
#
#   scripts/soak/run.sh [--hours H] [--cycles N] [--fuzz-frames N] [--recovery-gb N] [--opfuzz-ops N]
#                       [--power-loss-cycles N] [--native-fuzz-seconds N]
#
# Defaults: one pass, 1,000 SIGKILL cycles per ack level, 3,000,000 fuzzed frames (the broker's
# memory settles after about 1,500,000: docs/reliability.md), a 10 GB log
# for the recovery timing, 10,000,000 random log operations checked against the model (R6), 200
# power cuts of the log under the native power-loss model (D2). Everything runs on 127.0.0.1 and in temp directories it removes.
# --native-fuzz-seconds N adds a last stage, off by default because it needs clang (installed by
# apt-get when missing): scripts/fuzz-native.sh, libFuzzer for N seconds on each native parser
# harness in turn (RELIABILITY.md asks 86400 in soak); its corpus is kept in
# $EDDY_NATIVE_FUZZ_CORPUS (default ~/.cache/eddy-fuzz-native) so each soak starts where the last stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."

hours=0 cycles=1000 frames=3000000 gb=10 opfuzz=10000000 powerloss=200 nativefuzz=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --hours) hours="$2"; shift 2 ;;
    --cycles) cycles="$2"; shift 2 ;;
    --fuzz-frames) frames="$2"; shift 2 ;;
    --recovery-gb) gb="$2"; shift 2 ;;
    --opfuzz-ops) opfuzz="$2"; shift 2 ;;
    --power-loss-cycles) powerloss="$2"; shift 2 ;;
    --native-fuzz-seconds) nativefuzz="$2"; shift 2 ;;
    *) echo "usage: $0 [--hours H] [--cycles N] [--fuzz-frames N] [--recovery-gb N] [--opfuzz-ops N] [--power-loss-cycles N] [--native-fuzz-seconds N]" >&2; exit 2 ;;
  esac
done
for value in "$hours" "$cycles" "$frames" "$gb" "$opfuzz" "$powerloss" "$nativefuzz"; do
  [[ "$value" =~ ^[0-9]+$ ]] || { echo "$0: expected a non-negative integer, got '$value'" >&2; exit 2; }
done

report="$(mktemp -t eddy-soak-XXXXXX.jsonl)"
export EDDY_RELIABILITY_REPORT="$report" EDDY_CRASH_CYCLES="$cycles" EDDY_FUZZ_FRAMES="$frames"
export EDDY_RECOVERY_BYTES=$((gb * 1000 * 1000 * 1000))
# Storage faults at soak size: every byte of the torn tail, and over 10,000 bit flips.
export EDDY_TORN_EVERY_BYTE=1 EDDY_STORAGE_FLIPS=7700
# R6 at soak size: random log operations against the model (a new seed each pass, printed).
export EDDY_OPFUZZ_OPS="$opfuzz"
# D2 at soak size: power cuts of the log with every unsynced write dropped (a new seed each pass, printed).
export EDDY_POWER_LOSS_CYCLES="$powerloss"
npm run build > /dev/null
deadline=$(($(date +%s) + hours * 3600))
status=0
pass=1
while :; do
  echo "soak pass $pass: $cycles kill cycles per ack level, $frames fuzzed frames, ${gb} GB recovery, $opfuzz log operations, $powerloss power cuts" >&2
  npx vitest run --project reliability || status=1
  pass=$((pass + 1))
  [[ $(date +%s) -lt $deadline ]] || break
done
node scripts/reliability-table.mjs "$report" || status=1
echo "rows: $report" >&2
if [[ "$nativefuzz" -gt 0 ]]; then
  echo "native parsers under libFuzzer: $nativefuzz s per harness" >&2
  scripts/fuzz-native.sh --seconds "$nativefuzz" --corpus "${EDDY_NATIVE_FUZZ_CORPUS:-$HOME/.cache/eddy-fuzz-native}" || status=1
fi
exit "$status"
