#!/usr/bin/env bash
# npm run bench: set-up (h2load), build, then each benchmark in turn:
#   run     hot Check and deny paths vs a no-op ext_authz server (h2load; SQLite)
#   ingest  usage-batcher ingestion into PostgreSQL
#   fleet   revocation propagation between two processes, access-log ingestion (PostgreSQL)
#   cold    1,000,000 keys in PostgreSQL, every Check a cache miss; RSS with them all cached
#   ratelimit  hot path with a rate limit, strict vs approximate vs none, vs the no-op (h2load; SQLite)
#   memory  RSS with 1,000,000 keys cached and 1,000,000 windows live, per rate-limit mode (SQLite)
#   latency open-loop latency (p50..p99.9) at 25/50/75 % of the no-op's capacity, GC pauses, heap bytes per Check (SQLite)
#   garbage V8 heap bytes allocated per allowed Check, whole process, keyward vs the no-op, by owner (sampling heap profiler; SQLite)
#   redis   hot path with the Redis limiter and quota vs in memory; Redis commands, reads and CPU per Check
#           (BENCH_REDIS_URL, default redis://127.0.0.1:6379/9; skipped, with a message, when it does not answer)
# BENCH_ONLY="run ingest" picks some. The PostgreSQL ones (ingest, fleet, cold) use
# 127.0.0.1:5432 (user postgres, trust) and are skipped, with a message, when it does not answer.
# Each prints its tables and one `BENCH_RESULT {json}` line.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v h2load >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "h2load not found; installing Debian's nghttp2-client" >&2
    apt-get update && apt-get install -y nghttp2-client
  else
    echo "bench: h2load is required. Install it with:  sudo apt-get install -y nghttp2-client  (Debian/Ubuntu)" >&2
    exit 1
  fi
fi

npm run build --silent

pg_up() {
  node -e "const {Client}=require('pg');const c=new Client({connectionString:process.env.BENCH_PG_URL||'postgres://postgres@127.0.0.1:5432/postgres'});c.connect().then(()=>c.end()).then(()=>process.exit(0),()=>process.exit(1))"
}

status=0
for b in ${BENCH_ONLY:-run ratelimit redis latency garbage ingest fleet cold memory}; do
  echo
  echo "================================ bench/$b.ts ================================"
  if [ "$b" != run ] && [ "$b" != ratelimit ] && [ "$b" != memory ] && [ "$b" != latency ] && [ "$b" != redis ] && [ "$b" != garbage ] && ! pg_up; then
    echo "skipped: PostgreSQL is not reachable at ${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
    continue
  fi
  node --import tsx "bench/$b.ts" || status=1
done
exit $status
