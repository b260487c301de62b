#!/bin/bash
# One round of the side-by-side refusal benchmark (BENCHMARKS.md, "A sold-out crowd side by side"):
#   side-by-side.sh ours <sale-id>   a new sale (100 items, 4 shards) on the stack below, then wrk
#   SAME_SALE=1 side-by-side.sh ours <sale-id>   again on that sale (the crowd keeps coming)
#   side-by-side.sh peer             POST /api/sale/reset on the Fastify + Redis peer, then wrk
# Prints requests/s and CPU per attempt: utime + stime (from /proc/PID/stat) of the server's
# processes over the wrk run, divided by the requests wrk sent.
# Ours: DynamoDB Local on $DDB_PORT (8781), `cargo lambda watch --only-lambda-apis` on $API_PORT
# (9781) with $FUNCTION_PIDS purchase instances polling it (one per core is how the goal is judged:
# a Lambda instance has a CPU share of its own); the peer: node on 3100, Redis on 6379.
# Loopback only; every loop is bounded.
set -euo pipefail
side=$1
here=$(cd "$(dirname "$0")" && pwd)
DDB_PORT=${DDB_PORT:-8781}
API_PORT=${API_PORT:-9781}
tick=$(getconf CLK_TCK)

cpu_of() { # total utime+stime ticks of the given pids
  local total=0
  for p in "$@"; do
    read -r -a f < "/proc/$p/stat"
    # fields 14 and 15 (1-based), after the command name (no spaces in ours)
    total=$((total + f[13] + f[14]))
  done
  echo $total
}

case $side in
  ours)
    sale=$2
    ddb=$(pgrep -f "DynamoDBLocal.jar -inMemory -port $DDB_PORT" | head -1)
    server=( $FUNCTION_PIDS )
    emulator=$(pgrep -f "cargo-lambda lambda watch --only-lambda-apis .*--invoke-port $API_PORT" | head -1 || true)
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ); end=$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)
    [ -n "${SAME_SALE:-}" ] || "$ADMIN" --endpoint-url "http://127.0.0.1:$DDB_PORT" create-sale --sale-id "$sale" --name "Bench $sale" \
      --price-cents 100 --currency EUR --stock 100 --shards 4 --starts-at "$now" --ends-at "$end" >/dev/null
    url="http://127.0.0.1:$API_PORT/sales/$sale/purchases"
    store=$ddb;;
  peer)
    server=( $(pgrep -f "node dist/app.js") )
    store=$(pgrep -x redis-server | head -1)
    emulator=""
    curl -s -X POST -H 'Content-Type: application/json' -d '{}' http://127.0.0.1:3100/api/sale/reset >/dev/null
    url="http://127.0.0.1:3100/api/sale/purchase";;
  *) echo "usage: $0 ours <sale-id> | peer" >&2; exit 2;;
esac

s0=$(cpu_of "${server[@]}"); d0=$(cpu_of $store); e0=$( [ -n "$emulator" ] && cpu_of $emulator || echo 0 )
out=$(wrk -t2 -c64 -d10s --timeout 10s -s "$here/repeat.lua" "$url")
s1=$(cpu_of "${server[@]}"); d1=$(cpu_of $store); e1=$( [ -n "$emulator" ] && cpu_of $emulator || echo 0 )
requests=$(echo "$out" | awk '/requests in/ {print $1}')
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
us() { echo "scale=1; ($1) * 1000000 / $tick / $requests" | bc; }
echo "$out" | grep -E '^status|^requests|Non-2xx|Socket errors' || true
echo "side=$side requests=$requests rps=$rps server_us=$(us "$s1 - $s0") store_us=$(us "$d1 - $d0") emulator_us=$(us "$e1 - $e0") load=$(cut -d' ' -f1 /proc/loadavg)"
