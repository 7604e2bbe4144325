#!/bin/bash
# One gunicorn worker of <app> under load from <targets> (bench/results/targets/*.targets,
# drawn by a previous `make bench`), profiled by py-spy for 15 s, with the worker's and
# PostgreSQL's CPU time read from /proc over the same 15 s (BENCHMARKS.md, issue 14).
#
#   bench/profile_worker.sh wsgi:app bench/results/targets/detail.targets /tmp/svc_detail
#   bench/profile_worker.sh bench.reference_app:app bench/results/targets/detail.targets /tmp/ref_detail
#   .venv/bin/python -m bench.profile_split /tmp/svc_detail /tmp/ref_detail
#
# Needs py-spy (`.venv/bin/pip install py-spy`), wrk, and BENCH_DATABASE_URL (libpq form);
# writes <out>.raw (py-spy's collapsed stacks), <out>.wrk and <out>.cpu (clock ticks).
set -euo pipefail
app=$1 targets=$2 out=$3
cd "$(dirname "$0")/.."
export DATABASE_URL=${BENCH_DATABASE_URL:?set BENCH_DATABASE_URL}
export PIECES_JWT_SECRET=$(.venv/bin/python -c "from bench import workload; print(workload.JWT_SECRET)")
export WEB_CONCURRENCY=1 PORT=${PORT:-8123} PROMETHEUS_MULTIPROC_DIR=$(mktemp -d)
.venv/bin/gunicorn -c gunicorn.conf.py "$app" > "$out.gunicorn.log" 2>&1 &
master=$!
trap 'kill $master 2>/dev/null || true' EXIT
sleep 3
worker=$(pgrep -P $master | head -1)
load() { wrk -t1 -c4 -d"$1" -s bench/lua/bench.lua "http://127.0.0.1:$PORT" -- get "$targets"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
postgres_ticks() {
  local total=0
  for pid in $(pgrep -u postgres postgres); do total=$((total + $(ticks "$pid"))); done
  echo $total
}
load 5s > /dev/null
w0=$(ticks "$worker"); p0=$(postgres_ticks)
.venv/bin/py-spy record --pid "$worker" -d 15 -r 200 --format raw -o "$out.raw" --nonblocking \
  > /dev/null 2>&1 &
spy=$!
load 15s | grep BENCH_JSON > "$out.wrk"
w1=$(ticks "$worker"); p1=$(postgres_ticks)
wait $spy
echo "worker_ticks $((w1 - w0)) postgres_ticks $((p1 - p0)) hz $(getconf CLK_TCK)" > "$out.cpu"
