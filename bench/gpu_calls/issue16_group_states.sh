#!/usr/bin/env bash
# For the next H200 session, on branch issue16-group-states (not merged: untimed): ssd_chunk_states_triton, our
# state kernel reading B once per group (a strided view of the conv's output) instead of fla's chunk_fwd_h over B
# repeated on every head. Correct in Triton's interpreter on the CPU (tests/test_export_fast_path.py -k chunk_states);
# here the GPU tests of the scan and whole models first, then nemotron-h-8b's TTFT (seven timed 64k prefills) and a 64k
# profile, in an empty Triton cache. Merge if 64k beats main's (1889-1913 ms; main's rows re-timed by
# issue16_next.sh in the same session) and the tests pass; then the triton memory term loses B's per-head copy
# (blocks.triton_scan_elems_per_token) and tests/test_memtrace.py's prefill peaks are re-checked.
#   bash bench/gpu_calls/issue16_group_states.sh
source "$(dirname "$0")/setup.sh"
# correctness first (own Triton cache: the tests' small shapes must not pick the benchmark's autotune choices)
TRITON_CACHE_DIR=/tmp/triton_tests_$(date +%s) timeout 250 python3 -m pytest -q -p no:cacheprovider \
  tests/test_export_fast_path.py -k "chunk_states or ssd_scan or prefill_then_decode or slots" > "$W/tests.log" 2>&1
echo "tests rc=$? at $(el) s" >> "$W/calls.log"; pack
export TRITON_CACHE_DIR=/tmp/triton_fresh_$(date +%s)
timeout $(( 480 - $(el) )) python3 bench/gpu_fast_path.py --points --models nemotron-h-8b --kernels triton \
  --point-names ttft_4096,ttft_16384,ttft_65536 --long-repeats 7 --out "$W/gpu_fast_path_group_states_h200.json" \
  > "$W/fast_path.log" 2>&1
echo "fast path rc=$? at $(el) s" >> "$W/calls.log"; pack
timeout $(( 570 - $(el) )) python3 bench/gpu_fast_path.py --profile nemotron-h-8b:triton:65536 --out "$W/profile.json" > "$W/profile.log" 2>&1
echo "profile rc=$? at $(el) s" >> "$W/calls.log"; pack
cat "$W/calls.log"; grep ms "$W/fast_path.log"; grep -A 14 "^profile" "$W/profile.log" | cut -c1-72,150-200; tail -n 3 "$W/tests.log"
