#!/usr/bin/env bash
# `make bench`: start one coordinator and one worker (release builds) against
# the local PostgreSQL and RabbitMQ, measure the machine's ceilings (`warren
# bench --ceilings`), run `warren bench` for throughput (as
# fast as possible) and for latency (at a fixed rate, from four clients and
# from one), print the summary lines, and stop what it started. Every
# transition is committed (the durable lifecycle is always on). Tunables: BENCH_JOBS, BENCH_RATE,
# BENCH_RATE_JOBS, BENCH_CONCURRENCY (default 256), BENCH_WORKERS (worker processes),
# BENCH_COORDINATORS (coordinator processes, default 1; each its own HTTP port),
# BENCH_PRIMARY=1 (the first coordinator gets WARREN_CONSUMER_PRIORITY=10,
# so it takes intake and reports whole while the others stand by),
# BENCH_RETAINED (terminal jobs loaded into the table first, to measure
# throughput against a large history) and BENCH_PENDING (pending jobs on a
# queue no worker consumes, to measure coordinator memory with a backlog),
# BENCH_BIN (directory of the binaries, default target/release; lets paired
# before/after runs alternate between two builds), BENCH_TRACE=1 (one more
# run read off the wire into per-stage medians; needs tcpdump and python3)
# and BENCH_TRACE_JOBS (its jobs, default 1,000).
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${BENCH_BIN:-target/release}
jobs=${BENCH_JOBS:-20000}
rate=${BENCH_RATE:-1000}
rate_jobs=${BENCH_RATE_JOBS:-10000}
concurrency=${BENCH_CONCURRENCY:-256}
workers=${BENCH_WORKERS:-1}
coordinators=${BENCH_COORDINATORS:-1}
retained=${BENCH_RETAINED:-0}
pending=${BENCH_PENDING:-0}
port=${WARREN_BENCH_PORT:-8090}
ns="bench-$RANDOM$RANDOM"
db=warren_bench
token="bench-token-$RANDOM$RANDOM$RANDOM"
logs=.demo/bench
mkdir -p "$logs"

for b in warren-coordinator warren-worker warren; do
    [[ -x $bin/$b ]] || { echo "bench: $bin/$b missing; run 'cargo build --release --bins' (make bench does)" >&2; exit 1; }
done

psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null

export WARREN_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
export WARREN_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
export WARREN_NAMESPACE=$ns WARREN_API_TOKEN=$token WARREN_QUEUE_EXPIRES=2m
export WARREN_API_URL="http://127.0.0.1:$port" RUST_LOG=${RUST_LOG:-warn}

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    # Delete this run's queues now rather than let them expire: each is a
    # Raft group the broker keeps ticking, and a run started right after
    # measured up to 30% slower beside them. Needs rabbitmqctl (a local
    # broker); otherwise they expire after WARREN_QUEUE_EXPIRES.
    if command -v rabbitmqctl >/dev/null 2>&1; then
        rabbitmqctl -q list_queues name 2>/dev/null | grep "^$ns\." |
            while read -r queue; do rabbitmqctl -q delete_queue "$queue" </dev/null >/dev/null 2>&1 || true; done
    fi
}
trap cleanup EXIT INT TERM

for ((i = 0; i < coordinators; i++)); do
    log=coordinator.log
    (( i == 0 )) || log=coordinator-$((i + 1)).log
    priority=0
    (( i == 0 && ${BENCH_PRIMARY:-0} == 1 )) && priority=10
    WARREN_CONSUMER_PRIORITY=$priority WARREN_HTTP_ADDR="127.0.0.1:$((port + i))" "$bin/warren-coordinator" >"$logs/$log" 2>&1 &
    pids+=($!)
done
for ((i = 1; i <= workers; i++)); do
    WARREN_QUEUES=bench WARREN_CONCURRENCY=$concurrency "$bin/warren-worker" >"$logs/worker-$i.log" 2>&1 &
    pids+=($!)
done

deadline=$((SECONDS + 60))
for ((i = 0; i < coordinators; i++)); do
    until WARREN_API_URL="http://127.0.0.1:$((port + i))" "$bin/warren" health >/dev/null 2>&1; do
        (( SECONDS < deadline )) || { echo "bench: coordinator $((i + 1)) not healthy; see $logs" >&2; exit 1; }
        sleep 0.2
    done
done

# Synthetic history and backlog, loaded with triggers off (bulk data, not
# lifecycle moves). Ids are tiny so they sort before the run's UUID v7 ids.
# VACUUM ANALYZE leaves the table as a long-lived one is (visibility map
# set, statistics current) instead of measuring autovacuum catching up
# with a million rows written a second ago.
load() { # state queue count
    psql -X -q -h 127.0.0.1 -U postgres -d "$db" -v ON_ERROR_STOP=1 <<SQL
SET session_replication_role = replica;
INSERT INTO jobs (id, queue, task_type, payload, state, attempt, max_attempts, retry_base_ms,
                  retry_factor, retry_max_ms, retry_jitter, result, finished_at, created_at)
SELECT lpad(to_hex(i + $4), 32, '0')::uuid, '$2', 'echo', '{}', '$1', $5, 5, 1000, 2, 3600000, 0,
       CASE WHEN '$1' = 'completed' THEN '{}'::jsonb END,
       CASE WHEN '$1' = 'completed' THEN now() END, now() - interval '1 day'
  FROM generate_series(1, $3) AS i;
INSERT INTO queues (name) VALUES ('$2') ON CONFLICT DO NOTHING;
VACUUM ANALYZE jobs;
SQL
}
if (( retained > 0 )); then
    echo "loading $retained completed jobs (history)"
    load completed bench "$retained" 0 1
fi
if (( pending > 0 )); then
    echo "loading $pending pending jobs on queue 'backlog' (no worker consumes it)"
    load pending backlog "$pending" 100000000 0
fi

rss() { # each coordinator's resident memory
    local i out=""
    for ((i = 0; i < coordinators; i++)); do
        out+="${out:+ / }$(ps -o rss= -p "${pids[$i]}" | awk '{printf "%.0f MB", $1 / 1024}')"
    done
    echo "$out"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(rabbitmqctl -q version 2>/dev/null | head -1 | sed 's/^/RabbitMQ /'); $(psql -X -At -h 127.0.0.1 -U postgres -d postgres -c 'show server_version' | sed 's/^/PostgreSQL /')"
echo "ceilings: the broker and the database alone (what Warren's figures compare with)"
"$bin/warren" bench --ceilings --jobs 20000
echo "throughput: $jobs no-op jobs, as fast as possible ($coordinators coordinator(s), $workers worker(s), concurrency $concurrency each)"
"$bin/warren" bench --jobs "$jobs"
echo "latency: $rate_jobs no-op jobs at $rate jobs/s from 4 clients (their envelopes reach the broker together)"
"$bin/warren" bench --jobs "$rate_jobs" --rate "$rate"
echo "latency: $rate_jobs no-op jobs at $rate jobs/s from one client"
"$bin/warren" bench --jobs "$rate_jobs" --rate "$rate" --submitters 1
echo "latency: $rate_jobs no-op jobs at $rate jobs/s from 4 HTTP clients (POST /v1/jobs, together)"
"$bin/warren" bench --jobs "$rate_jobs" --rate "$rate" --via http
echo "coordinator RSS: $(rss)"

# BENCH_TRACE=1: one more latency run, one job every 10 ms from one client,
# captured on the loopback interface; deploy/local/wire_stages.py reads the
# capture into per-stage medians (see BENCHMARKS.md, "The wire, read").
if [[ ${BENCH_TRACE:-0} == 1 ]]; then
    for tool in tcpdump ss python3; do
        command -v "$tool" >/dev/null || { echo "bench: BENCH_TRACE needs $tool (apt-get install tcpdump iproute2 python3)" >&2; exit 1; }
    done
    trace_jobs=${BENCH_TRACE_JOBS:-1000}
    echo "wire trace: $trace_jobs no-op jobs at 100 jobs/s from one client, captured on lo"
    tcpdump -i lo -nn -s 128 -w "$logs/trace.pcap" 'tcp port 5672 or tcp port 5432' 2>"$logs/tcpdump.log" &
    tcpdump_pid=$!
    deadline=$((SECONDS + 10))
    until grep -q "listening on" "$logs/tcpdump.log"; do
        (( SECONDS < deadline )) || { echo "bench: tcpdump did not start; see $logs/tcpdump.log" >&2; exit 1; }
        sleep 0.1
    done
    "$bin/warren" bench --jobs "$trace_jobs" --rate 100 --submitters 1 >"$logs/trace-bench.log" &
    trace_pid=$!
    # Name the connections while the bench's own is open.
    deadline=$((SECONDS + 10))
    until ss -tnp | grep -q "pid=$trace_pid,"; do
        (( SECONDS < deadline )) || { echo "bench: the traced run never connected" >&2; exit 1; }
        sleep 0.05
    done
    ss -tnp >"$logs/trace-sockets.txt"
    wait "$trace_pid"
    tail -n 1 "$logs/trace-bench.log"
    kill -INT "$tcpdump_pid"
    wait "$tcpdump_pid" 2>/dev/null || true
    tcpdump -nn -tt -r "$logs/trace.pcap" 2>/dev/null >"$logs/trace-packets.txt"
    python3 deploy/local/wire_stages.py "$logs/trace-packets.txt" "$logs/trace-sockets.txt"
fi
