#!/usr/bin/env bash
# Warren demo (`make demo`): run a coordinator and two workers against the
# local PostgreSQL and RabbitMQ, push a mixed workload through them with the
# `warren` CLI, show live progress, then print what happened and where to look.
#
# Expects `make services build` to have run (the Makefile's demo target does).
# Uses a fresh AMQP namespace `demo-<random>` and the database `warren_demo`
# (dropped and recreated at the start, kept afterwards for inspection). Logs go
# to .demo/. On exit (or Ctrl-C) it stops exactly the processes it started —
# workers first with SIGTERM so they drain — and deletes nothing else.
#
# It also registers the example workflow template
# (examples/templates/dataset-build.yaml: download → validate → deduplicate →
# label → store, each step an `exec` job) and runs it once alongside the jobs.
#
# Exit status: 0 if every job ended as expected (all completed except one
# deliberately failing job, which ends dead in `failed`, and one cancelled
# job) and the workflow completed, 1 otherwise.
#
# Environment:
#   WARREN_DEMO_PORT     coordinator HTTP port (default 8080)
#   WARREN_DEMO_TIMEOUT  seconds to wait for the workload to finish (default 120)
#   WARREN_DEMO_KEEP     1 = keep everything running after the summary, until Ctrl-C
#   WARREN_PG_PORT       PostgreSQL port (default 5432)
#   WARREN_AMQP_URL      RabbitMQ URL (default amqp://guest:guest@127.0.0.1:5672/%2f)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BIN=target/debug
WARREN="$BIN/warren"
PORT="${WARREN_DEMO_PORT:-8080}"
TIMEOUT="${WARREN_DEMO_TIMEOUT:-120}"
KEEP="${WARREN_DEMO_KEEP:-0}"
PG_PORT="${WARREN_PG_PORT:-5432}"
DB=warren_demo
LOGS=.demo
METRICS_PORTS=(9101 9102)

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

NS="demo-$(random_hex 4)"
TOKEN="demo-$(random_hex 16)"
API="http://127.0.0.1:$PORT"

# Everything the three programs read; set explicitly so a WARREN_* variable
# left in the caller's shell cannot point the demo somewhere else.
export WARREN_AMQP_URL="${WARREN_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export WARREN_NAMESPACE="$NS"
export WARREN_API_TOKEN="$TOKEN"
export WARREN_API_URL="$API"
export WARREN_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$DB"
export WARREN_HTTP_ADDR="127.0.0.1:$PORT"
export WARREN_QUEUE_TYPE=quorum
export NO_COLOR=1 # plain log files
# The demo's queues disappear from RabbitMQ an hour after the demo stops
# using them. Every process (the CLI included) must use the same value, or
# RabbitMQ refuses the queue declaration.
export WARREN_QUEUE_EXPIRES=1h
unset WARREN_QUEUES WARREN_CONCURRENCY WARREN_METRICS_ADDR

if [[ -t 1 ]]; then
    BOLD=$'\e[1m' DIM=$'\e[2m' RESET=$'\e[0m'
else
    BOLD='' DIM='' RESET=''
fi
say() { printf '%s==>%s %s\n' "$BOLD" "$RESET" "$*"; }
die() {
    printf 'demo: ERROR: %s\n' "$*" >&2
    exit 1
}

psql_demo() { psql -X -w -q -At -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$DB" -c "$1"; }
psql_admin() { PGOPTIONS='-c client_min_messages=warning' psql -X -w -q -At -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "$1"; }

# ---------------------------------------------------------------------------
# Processes: started here, stopped only by the trap, by pid.

COORDINATOR_PID=''
WORKER_PIDS=()

alive() { kill -0 "$1" 2>/dev/null; }

# SIGTERM each pid, wait up to $1 seconds for all, SIGKILL what is left.
stop_pids() {
    local grace=$1 pid deadline
    shift
    for pid in "$@"; do
        if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    deadline=$((SECONDS + grace))
    for pid in "$@"; do
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
        if alive "$pid"; then
            printf 'demo: pid %s did not stop within %ss; killing it\n' "$pid" "$grace" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((${#WORKER_PIDS[@]} > 0)) || [[ -n $COORDINATOR_PID ]]; then
        echo
        say "Stopping what the demo started: workers ${WORKER_PIDS[*]:-} (SIGTERM, they drain), then coordinator ${COORDINATOR_PID:-}"
        # Worker shutdown timeout is 30s by default; then they cancel what is left.
        ((${#WORKER_PIDS[@]} > 0)) && stop_pids 45 "${WORKER_PIDS[@]}"
        [[ -n $COORDINATOR_PID ]] && stop_pids 15 "$COORDINATOR_PID"
        say "Stopped. Kept: database $DB and the logs in $LOGS/."
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Exits with the log's tail if a process we started has died.
check_alive() {
    local name=$1 pid=$2 log=$3
    if ! alive "$pid"; then
        wait "$pid" 2>/dev/null || true
        printf 'demo: %s (pid %s) exited; last lines of %s:\n' "$name" "$pid" "$log" >&2
        tail -n 15 "$log" >&2 || true
        exit 1
    fi
}

api_healthy() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 2 "$API/health" 2>/dev/null | grep -q '"status":"ok"'
    else
        "$WARREN" health >/dev/null 2>&1
    fi
}

# ---------------------------------------------------------------------------
# Preflight

for b in warren warren-coordinator warren-worker; do
    [[ -x $BIN/$b ]] || die "$BIN/$b is missing: run 'make build' first (or just 'make demo')"
done
command -v psql >/dev/null 2>&1 || die "psql not found: run 'make services' first"
psql_admin 'select 1' >/dev/null ||
    die "cannot reach PostgreSQL as postgres@127.0.0.1:$PG_PORT: run 'make services' first"

mkdir -p "$LOGS"
say "Warren demo: namespace $NS, database $DB, API $API, logs in $LOGS/"
psql_admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
psql_admin "CREATE DATABASE $DB" >/dev/null

# ---------------------------------------------------------------------------
# Start: one coordinator, two workers

"$BIN/warren-coordinator" >"$LOGS/coordinator.log" 2>&1 &
COORDINATOR_PID=$!
say "Started coordinator (pid $COORDINATOR_PID); waiting for $API/health"
deadline=$((SECONDS + 30))
until api_healthy; do
    check_alive coordinator "$COORDINATOR_PID" "$LOGS/coordinator.log"
    ((SECONDS < deadline)) ||
        die "coordinator not healthy after 30s (is port $PORT free? set WARREN_DEMO_PORT); see $LOGS/coordinator.log"
    sleep 0.3
done

for i in 1 2; do
    WARREN_QUEUES=default,media WARREN_CONCURRENCY=8 \
        WARREN_METRICS_ADDR="127.0.0.1:${METRICS_PORTS[i - 1]}" \
        "$BIN/warren-worker" >"$LOGS/worker-$i.log" 2>&1 &
    WORKER_PIDS+=($!)
done
say "Started workers (pids ${WORKER_PIDS[*]}): queues default,media, concurrency 8 each, metrics on :${METRICS_PORTS[0]} and :${METRICS_PORTS[1]}"
deadline=$((SECONDS + 30))
until [[ $(psql_demo 'select count(*) from workers' 2>/dev/null) == 2 ]]; do
    for i in 1 2; do check_alive "worker $i" "${WORKER_PIDS[i - 1]}" "$LOGS/worker-$i.log"; done
    ((SECONDS < deadline)) || die "workers did not send a heartbeat within 30s; see $LOGS/worker-*.log"
    sleep 0.3
done
say "Both workers are sending heartbeats"

# Seed the per-task-type defaults of queue media: jobs that set no timeout
# get 5 minutes for images and an hour for videos.
"$WARREN" queue set media --default-timeout image=5m --default-timeout video=1h >/dev/null ||
    die "could not seed the defaults of queue media"
say "Seeded queue media: task type image times out after 5m, video after 1h unless a job sets its own"

# ---------------------------------------------------------------------------
# Submit the workload (over AMQP, with publisher confirms)

# submit ARGS...: prints the ids, one per line.
submit() { "$WARREN" submit "$@"; }

say "Submitting the workload with '$WARREN submit ... --count N'"
start=$SECONDS
LONG_ID=$(submit --queue media --type sleep --payload '{"ms": 20000}' --priority 9)
printf '   %-46s %s\n' "1 sleep of 20 s (to be cancelled)" "$LONG_ID"

submit --type echo --payload '{"greeting": "hello from the Warren demo"}' --count 300 >/dev/null
printf '   %s\n' "300 echo"

for ms in 50 100 150 200 250 300 350 400 450 500; do
    submit --queue media --type sleep --payload "{\"ms\": $ms}" --count 5 >/dev/null
done
printf '   %s\n' "50 sleep of 50-500 ms on queue media"

submit --type flaky --payload '{"fail_times": 1}' --count 15 >/dev/null
submit --type flaky --payload '{"fail_times": 2}' --count 15 >/dev/null
printf '   %s\n' "30 flaky failing 1-2 times before succeeding (retried with backoff)"

EXEC_ID=$(submit --type exec --count 20 \
    --payload '{"cmd": ["sh", "-c", "head -c 64 /dev/urandom | sha256sum | cut -c1-64"]}' | head -n 1)
printf '   %s\n' "20 exec hashing random bytes"

DEAD_ID=$(submit --type exec --max-attempts 2 \
    --payload '{"cmd": ["sh", "-c", "echo this job always fails >&2; exit 1"]}')
printf '   %-46s %s\n' "1 exec that always fails (2 attempts)" "$DEAD_ID"

EXPECTED=402
say "Submitted $EXPECTED jobs in $((SECONDS - start))s"

# ---------------------------------------------------------------------------
# A workflow from a template (steps are jobs too; the counts above and below
# leave them out and the workflow is followed on its own)

TEMPLATE=examples/templates/dataset-build.yaml
WF_DIR="$PWD/$LOGS/dataset"
rm -rf "$WF_DIR"
say "Registering the workflow template $TEMPLATE and running it once"
"$WARREN" template put "$TEMPLATE" | sed 's/^/   /'
WF_ID=$("$WARREN" workflow submit --template dataset-build \
    --var workdir="$WF_DIR" --var dataset=animals --var rows=500)
printf '   %-46s %s\n' "workflow dataset-build-animals (5 steps)" "$WF_ID"

# ---------------------------------------------------------------------------
# Live progress (exact counts from the jobs table) and the cancellation

STATES=(pending queued running retrying completed failed timeout cancelled)
declare -A COUNT
read_counts() {
    local rows state n
    COUNT=()
    TOTAL=0
    rows=$(psql_demo 'select state, count(*) from jobs where workflow_id is null group by 1') || return 1
    while IFS='|' read -r state n; do
        [[ -n $state ]] || continue
        COUNT[$state]=$n
        TOTAL=$((TOTAL + n))
    done <<<"$rows"
}
count() { echo "${COUNT[$1]:-0}"; }
active() {
    echo $(($(count pending) + $(count queued) + $(count running) + $(count retrying) +
        $(count awaiting_approval) + $(count blocked)))
}

# The workflow's status and finished/total steps, e.g. `running 2/5`.
workflow_line() {
    psql_demo "select w.status || ' ' || count(*) filter (where j.state in ('completed', 'failed', 'timeout', 'skipped', 'cancelled')) || '/' || count(*)
                 from workflows w join jobs j on j.workflow_id = w.id and j.superseded_at is null
                where w.id = '$WF_ID' group by w.status" 2>/dev/null || true
}
workflow_done() { [[ $(workflow_line) =~ ^(completed|failed|cancelled)\  ]]; }

say "Progress (jobs by state, from the jobs table; the cancel happens on the way)"
start=$SECONDS
deadline=$((SECONDS + TIMEOUT))
cancelled=0
last_line=''
last_print=-1
while :; do
    for i in 1 2; do check_alive "worker $i" "${WORKER_PIDS[i - 1]}" "$LOGS/worker-$i.log"; done
    check_alive coordinator "$COORDINATOR_PID" "$LOGS/coordinator.log"
    read_counts || true
    line=$(printf '%5ss  total %3s/%s' "$((SECONDS - start))" "$TOTAL" "$EXPECTED")
    for s in "${STATES[@]}"; do line+=$(printf ' | %s %s' "$s" "$(count "$s")"); done
    line+=" | workflow $(workflow_line)"
    if [[ -t 1 ]]; then
        printf '\r%s\e[K' "$line"
    elif [[ $line != "$last_line" ]] && ((SECONDS - last_print >= 2)); then
        # Not a terminal: a line every 2s at most, only when something changed.
        printf '%s\n' "$line"
        last_print=$SECONDS
    fi
    last_line=$line

    if ((cancelled == 0)); then
        # Cancel the long sleep once it runs and has reported some progress.
        long=$(psql_demo "select state || ' ' || coalesce(progress, 0)::int from jobs where id = '$LONG_ID'" || true)
        if [[ $long == running* ]] && ((${long#running } >= 10)); then
            [[ -t 1 ]] && echo
            printf '   the 20 s sleep is running (%s%%); cancelling it: ' "${long#running }"
            "$WARREN" cancel "$LONG_ID" || echo "(cancel failed)"
            cancelled=1
        fi
    fi

    if ((TOTAL >= EXPECTED)) && (($(active) == 0)) && workflow_done; then
        break
    fi
    if ((SECONDS >= deadline)); then
        echo
        die "the workload did not finish within ${TIMEOUT}s (WARREN_DEMO_TIMEOUT); see $LOGS/ and '$WARREN workflow status $WF_ID'"
    fi
    sleep 0.5
done
[[ -t 1 ]] && echo
elapsed=$((SECONDS - start))
say "All $TOTAL jobs finished in about ${elapsed}s"

# ---------------------------------------------------------------------------
# Summary

echo
say "Jobs by state (workflow steps excluded)"
psql_demo 'select state, count(*) from jobs where workflow_id is null group by 1 order by 1' | awk -F'|' '{ printf "   %-10s %5d\n", $1, $2 }'

retries=$(psql_demo "select count(*) from job_events where to_state = 'retrying'")
retried_jobs=$(psql_demo "select count(distinct job_id) from job_events where to_state = 'retrying'")
events=$(psql_demo 'select count(*) from job_events')
say "Retries: $retries (of $retried_jobs jobs); $events lifecycle events recorded in job_events"

if command -v curl >/dev/null 2>&1; then
    say "Transitions counted by the coordinator (warren_job_transitions_total, by target state)"
    curl -fsS --max-time 5 "$API/metrics" | awk '
        /^warren_job_transitions_total\{/ {
            match($0, /to="[a-z_]+"/); to = substr($0, RSTART + 4, RLENGTH - 5); sum[to] += $NF
        }
        END { for (s in sum) printf "   %-10s %5d\n", s, sum[s] }' | sort
    for i in 1 2; do
        port=${METRICS_PORTS[i - 1]}
        summary=$(curl -fsS --max-time 5 "http://127.0.0.1:$port/metrics" | awk '
            /^warren_worker_jobs_total\{/ {
                match($0, /outcome="[a-z_]+"/); o = substr($0, RSTART + 9, RLENGTH - 10); sum[o] += $NF
            }
            END { for (o in sum) printf "%s %d, ", o, sum[o] }')
        printf '   worker %s (:%s) attempts: %s\n' "$i" "$port" "${summary%, }"
    done
fi

echo
say "$WARREN status $EXEC_ID   # a completed exec job"
"$WARREN" status "$EXEC_ID" | sed 's/^/   /'
echo
say "$WARREN status $DEAD_ID   # the job that always fails: dead after 2 attempts"
"$WARREN" status "$DEAD_ID" | sed 's/^/   /'
echo
say "$WARREN events $DEAD_ID   # its lifecycle, from job_events"
"$WARREN" events "$DEAD_ID" | sed 's/^/   /'
echo
say "$WARREN status $LONG_ID   # the cancelled sleep"
"$WARREN" status "$LONG_ID" | sed 's/^/   /'
echo
say "$WARREN workflow status $WF_ID   # the dataset-build workflow, step by step"
"$WARREN" workflow status "$WF_ID" | sed 's/^/   /'
echo
say "$WARREN workers"
"$WARREN" workers | sed 's/^/   /'
echo
say "$WARREN queue show media   # queue controls: pause, max-in-flight, rate limit, task defaults"
"$WARREN" queue show media | sed 's/^/   /'

# ---------------------------------------------------------------------------
# Verdict

failures=()
[[ $TOTAL == "$EXPECTED" ]] || failures+=("expected $EXPECTED jobs, found $TOTAL")
[[ $(count completed) == $((EXPECTED - 2)) ]] ||
    failures+=("expected $((EXPECTED - 2)) completed, found $(count completed)")
dead=$(psql_demo "select state || ' ' || attempt from jobs where id = '$DEAD_ID'")
[[ $dead == "failed 2" ]] || failures+=("the always-failing job is '$dead', expected 'failed 2'")
long=$(psql_demo "select state from jobs where id = '$LONG_ID'")
[[ $long == cancelled ]] || failures+=("the long sleep is '$long', expected 'cancelled'")
workflow=$(psql_demo "select status from workflows where id = '$WF_ID'")
[[ $workflow == completed ]] || failures+=("the workflow is '$workflow', expected 'completed' (see $WARREN workflow status $WF_ID)")

cat <<EOF

${BOLD}Where to look${RESET}${DIM} (URLs answer while the demo runs; WARREN_DEMO_KEEP=1 keeps it running)${RESET}
   API           curl -s -H "Authorization: Bearer $TOKEN" "$API/v1/jobs?state=failed"
   CLI           WARREN_NAMESPACE=$NS WARREN_API_TOKEN=$TOKEN $WARREN list --state completed
                 WARREN_API_TOKEN=$TOKEN $WARREN workflow status $WF_ID
   workflow      $WF_DIR/final/animals.csv
   metrics       curl -s $API/metrics | grep '^warren_'
                 curl -s http://127.0.0.1:${METRICS_PORTS[0]}/metrics   (worker 1; worker 2 on :${METRICS_PORTS[1]})
   logs          $LOGS/coordinator.log $LOGS/worker-1.log $LOGS/worker-2.log
   database      psql -h 127.0.0.1 -p $PG_PORT -U postgres -d $DB -c 'select state, count(*) from jobs group by 1'
                 psql -h 127.0.0.1 -p $PG_PORT -U postgres -d $DB -c "select * from job_events where job_id = '$DEAD_ID' order by id"
EOF
echo

if ((${#failures[@]} > 0)); then
    for f in "${failures[@]}"; do printf 'demo: UNEXPECTED: %s\n' "$f" >&2; done
    say "Demo finished with surprises (exit 1)"
    exit 1
fi
say "Every job ended as expected: $((EXPECTED - 2)) completed, 1 dead after 2 attempts, 1 cancelled; the workflow completed"

if [[ $KEEP == 1 ]]; then
    say "WARREN_DEMO_KEEP=1: everything keeps running; press Ctrl-C to stop"
    trap 'exit 0' INT
    while alive "$COORDINATOR_PID"; do sleep 1; done
fi
