#!/usr/bin/env bash
# Local demo of cross-instance invalidation, all on 127.0.0.1: the fauxqs SNS/SQS emulator, a tiny HTTP data
# source (both from infra/local/fauxqs.ts) and three `embedded-cache serve` instances (ports 8081-8083, each with
# its own data dir and, when redis-server is on PATH, its own embedded redis-server) on one topic. Every instance
# loads user:1 from the source (loads never publish); a PUT on 8081 makes 8082 and 8083 drop their copy (their GET
# misses, and reloads the new value); a tag invalidation on 8083 drops the tagged entry on 8081.
#
#   infra/local/demo.sh             # runs the demonstration, then keeps the instances up until Ctrl-C
#   DEMO_EXIT=1 infra/local/demo.sh # exits (and cleans up) right after the demonstration
#
# Ctrl-C (or the end, with DEMO_EXIT=1) stops the instances (each deletes its queue and stops its redis-server),
# then fauxqs, and removes the data dirs.
set -euo pipefail

cd "$(dirname "$0")/../.."
# the project's Node 24 (the `node` devDependency) itself, not an npx wrapper, so that the PIDs below are the
# processes that get the signals
NODE=("$PWD/node_modules/.bin/node")
[[ -x "${NODE[0]}" ]] || { echo "run npm install first (node_modules/.bin/node is missing)" >&2; exit 1; }
HOST=127.0.0.1
PORTS=(8081 8082 8083)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/embedded-cache-demo.XXXXXX")
PIDS=()

cleanup() {
  trap - EXIT INT TERM
  echo
  echo "== stopping"
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
  echo "== stopped; logs were in $WORK (removed)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in "${PORTS[@]}"; do
  if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
    echo "port $port is in use on $HOST; stop what listens there first" >&2
    exit 1
  fi
done

echo "== starting fauxqs (SNS/SQS emulator) and the demo data source on $HOST"
"${NODE[@]}" infra/local/fauxqs.ts >"$WORK/fauxqs.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
  grep -q '^SOURCE_URL=' "$WORK/fauxqs.log" && break
  sleep 0.1
done
ENDPOINT=$(sed -n 's/^FAUXQS_ENDPOINT=//p' "$WORK/fauxqs.log")
[[ -n "$ENDPOINT" ]] || { echo "fauxqs did not start:" >&2; cat "$WORK/fauxqs.log" >&2; exit 1; }
SOURCE_URL=$(sed -n 's/^SOURCE_URL=//p' "$WORK/fauxqs.log")
echo "   SNS/SQS: $ENDPOINT   source: $SOURCE_URL"

for i in 1 2 3; do
  port=${PORTS[$((i - 1))]}
  echo "== starting instance demo-$i on $HOST:$port (data dir $WORK/demo-$i)"
  env CACHE_INSTANCE_ID="demo-$i" \
    CACHE_DATA_DIR="$WORK/demo-$i" \
    CACHE_HTTP_HOST="$HOST" \
    CACHE_HTTP_PORT="$port" \
    CACHE_MAXMEMORY=64mb \
    CACHE_BUS=sns-sqs \
    CACHE_SNS_TOPIC_NAME=embedded-cache-demo \
    CACHE_SQS_QUEUE_PREFIX=embedded-cache-demo \
    CACHE_SOURCE=http \
    CACHE_SOURCE_URL="$SOURCE_URL" \
    AWS_ENDPOINT_URL="$ENDPOINT" \
    AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=test \
    AWS_SECRET_ACCESS_KEY=test \
    "${NODE[@]}" layers/sidecar/main.ts serve >"$WORK/demo-$i.log" 2>&1 &
  PIDS+=("$!")
done

for port in "${PORTS[@]}"; do
  for attempt in $(seq 1 150); do
    curl -fsS "http://$HOST:$port/readyz" >/dev/null 2>&1 && break
    if [[ $attempt -eq 150 ]]; then
      echo "instance on $port is not ready; its log:" >&2
      cat "$WORK/demo-$((port - 8080)).log" >&2
      exit 1
    fi
    sleep 0.2
  done
done
echo "== all three ready (store: $(curl -fsS "http://$HOST:8081/api/v1/cache/stats" | sed -n 's/.*"store":"\([a-z]*\)".*/\1/p'))"

show() { # METHOD PORT PATH [BODY]
  local method=$1 port=$2 path=$3 body=${4:-}
  local args=(-sS -X "$method" "http://$HOST:$port$path")
  [[ -n "$body" ]] && args+=(-H 'content-type: application/json' -d "$body")
  printf '$ curl -X %s %s:%s%s %s\n  → ' "$method" "$HOST" "$port" "$path" "${body:+-d '$body'}"
  curl "${args[@]}" -w '  (HTTP %{http_code})\n'
}

# waits until GET on PORT of KEY answers STATUS (invalidations arrive asynchronously, in milliseconds)
await_status() {
  local port=$1 key=$2 status=$3
  for _ in $(seq 1 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$HOST:$port/api/v1/cache/$key") == "$status" ]] && return 0
    sleep 0.05
  done
  echo "timed out waiting for $key on $port to answer $status" >&2
  return 1
}

echo
echo "== 1. every instance loads user:1 from the source (?load=true: a fill, never published)"
for port in "${PORTS[@]}"; do show GET "$port" '/api/v1/cache/user:1?load=true'; done
for port in "${PORTS[@]}"; do show GET "$port" /api/v1/cache/user:1; done

echo
echo "== 2. user:1 is written on 8081 → 8082 and 8083 drop their copy (a GET there misses)"
show PUT 8081 /api/v1/cache/user:1 '{"value":"ada lovelace","ttl":600,"tags":["users"]}'
await_status 8082 user:1 404
await_status 8083 user:1 404
show GET 8081 /api/v1/cache/user:1
show GET 8082 /api/v1/cache/user:1
show GET 8083 /api/v1/cache/user:1
echo "   (the app writes its database too; 8082 reloads the new value on its next miss)"
curl -sS -X PUT "${SOURCE_URL/\{key\}/user:1}" -d '"ada lovelace"'
show GET 8082 '/api/v1/cache/user:1?load=true'

echo
echo "== 3. a tag invalidation on 8083 removes the entry tagged \"users\" on 8081"
show POST 8083 /api/v1/cache/invalidate '{"tags":["users"],"invalidation_type":"tag"}'
await_status 8081 user:1 404
show GET 8081 /api/v1/cache/user:1

echo
echo "== sync counters of 8082"
curl -sS "http://$HOST:8082/metrics" | grep -E '^cache_sync_events_(applied|received)_total' || true

if [[ "${DEMO_EXIT:-0}" == "1" ]]; then
  echo
  echo "== demonstration done (DEMO_EXIT=1)"
  exit 0
fi
echo
echo "== instances stay up on 8081-8083; try the curl commands above. Ctrl-C stops everything."
wait
