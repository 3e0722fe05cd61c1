# Sourced by the device-call scripts beside it: fla-core from the carried .whl, unbuffered Python, a work folder
# $W packed into one tarball in $OUT (a call returns 8 files at most), `el` = seconds since the start.
set -u
OUT=${OUT:-/tmp/out}; W=/tmp/work; rm -rf "$W"; mkdir -p "$OUT" "$W"   # a warm machine keeps /tmp: start clean
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
start=$(date +%s); el() { echo $(( $(date +%s) - start )); }
pack() { tar -czf "$OUT/results.tgz" -C "$W" . ; }
