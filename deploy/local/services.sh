#!/usr/bin/env bash
# Make sure the local PostgreSQL and RabbitMQ that Warren's tests, demo and
# benchmarks use are installed, running and reachable.
#
# Idempotent: when everything is already fine it only checks and prints
# `services: postgres ok, rabbitmq ok`. On a fresh Debian 12 (as root) it
# installs the Debian packages, creates/starts a PostgreSQL cluster, starts
# RabbitMQ, and adjusts PostgreSQL so that
#   * user `postgres` can connect over TCP from 127.0.0.1/::1 without a
#     password (trust lines prepended to pg_hba.conf, original backed up);
#   * max_connections >= 300 (ALTER SYSTEM + restart).
# It never drops or rewrites data. systemd is not assumed: services are
# started with pg_ctlcluster and `rabbitmq-server -detached`.
#
# Environment:
#   WARREN_PG_PORT            port checked for PostgreSQL (default 5432)
#   WARREN_AMQP_PORT          port checked for RabbitMQ AMQP (default 5672)
#   WARREN_SERVICES_TIMEOUT   seconds to wait for each service (default 60)
set -euo pipefail

PG_PORT="${WARREN_PG_PORT:-5432}"
AMQP_PORT="${WARREN_AMQP_PORT:-5672}"
TIMEOUT="${WARREN_SERVICES_TIMEOUT:-60}"
MIN_PG_CONNECTIONS=300

# /usr/sbin holds rabbitmq-server, rabbitmqctl, ...; not always on a user's PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

LOG_PREFIX=services
# shellcheck source=deploy/local/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Run a command as the postgres OS user (peer authentication on the socket).
as_postgres() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    elif [[ $(id -un) == postgres ]]; then
        "$@"
    else
        as_root runuser -u postgres -- "$@"
    fi
}

# ---------------------------------------------------------------------------
# PostgreSQL helpers

# psql over TCP as user postgres, never prompting and never using a password
# from the environment or a ~/.pgpass (so that a trust problem is detected).
pg_tcp() {
    local port=$1
    shift
    env -u PGPASSWORD PGPASSFILE=/nonexistent/warren-no-pgpass PGCONNECT_TIMEOUT=5 \
        psql -X -w -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc "$@"
}

pg_server_installed() {
    command -v psql >/dev/null 2>&1 &&
        command -v pg_ctlcluster >/dev/null 2>&1 &&
        compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# Sets PG_VER, PG_CLUSTER, PG_CLUSTER_PORT, PG_STATUS from pg_lsclusters,
# preferring the cluster on $PG_PORT. Returns 1 if there is no cluster.
pg_pick_cluster() {
    local ver cluster port status rest first=""
    PG_VER="" PG_CLUSTER="" PG_CLUSTER_PORT="" PG_STATUS=""
    while read -r ver cluster port status rest; do
        [[ -n $ver ]] || continue
        [[ -n $first ]] || first="$ver $cluster $port $status"
        if [[ $port == "$PG_PORT" ]]; then
            first="$ver $cluster $port $status"
            break
        fi
    done < <(pg_lsclusters -h 2>/dev/null || true)
    [[ -n $first ]] || return 1
    read -r PG_VER PG_CLUSTER PG_CLUSTER_PORT PG_STATUS <<<"$first"
}

pg_ctl() {
    as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VER" "$PG_CLUSTER" "$@"
}

pg_show_log() {
    local f="/var/log/postgresql/postgresql-${PG_VER}-${PG_CLUSTER}.log"
    if [[ -r $f ]]; then
        log "last lines of $f:"
        tail -n 20 "$f" >&2 || true
    fi
}

pg_accepting() { pg_isready -q -h 127.0.0.1 -p "$1" -t 3 2>/dev/null; }

# Poll until `$@` succeeds or $TIMEOUT seconds pass; prints progress. The
# check's stdout is discarded; it should keep stderr for real messages only.
wait_until() {
    local what=$1
    shift
    local start=$SECONDS next_report=$((SECONDS + 5))
    until "$@" >/dev/null; do
        if ((SECONDS - start >= TIMEOUT)); then
            return 1
        fi
        if ((SECONDS >= next_report)); then
            log "waiting for $what ($((SECONDS - start))s / ${TIMEOUT}s)"
            next_report=$((SECONDS + 5))
        fi
        sleep 1
    done
}

ensure_postgres_running() {
    if ! pg_server_installed; then
        apt_install postgresql
    fi
    if ! pg_pick_cluster; then
        local ver
        # shellcheck disable=SC2012  # version directory names are plain numbers
        ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
        if [[ -z $ver ]]; then
            # shellcheck disable=SC2012
            ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
        fi
        [[ -n $ver ]] || die "PostgreSQL is installed but no server version was found"
        log "creating PostgreSQL cluster $ver/main"
        as_root pg_createcluster "$ver" main
        pg_pick_cluster || die "pg_createcluster $ver main did not create a cluster"
    fi
    if [[ $PG_STATUS != online* ]]; then
        log "starting PostgreSQL cluster $PG_VER/$PG_CLUSTER (port $PG_CLUSTER_PORT)"
        pg_ctl start || {
            pg_show_log
            die "could not start PostgreSQL cluster $PG_VER/$PG_CLUSTER"
        }
    fi
}

# Make trust auth and max_connections right. Needs the server accepting.
configure_postgres() {
    local port=$PG_CLUSTER_PORT err
    if ! wait_until "PostgreSQL $PG_VER/$PG_CLUSTER to accept connections" pg_accepting "$port"; then
        pg_show_log
        die "PostgreSQL did not accept connections on 127.0.0.1:$port within ${TIMEOUT}s"
    fi

    if ! err=$(pg_tcp "$port" 'select 1' 2>&1 >/dev/null); then
        if grep -Eqi 'authentication|password|pg_hba' <<<"$err"; then
            pg_trust_localhost
        else
            die "psql -h 127.0.0.1 -p $port -U postgres failed: $err"
        fi
    fi

    local max
    max=$(pg_tcp "$port" 'show max_connections') ||
        die "cannot query PostgreSQL on 127.0.0.1:$port"
    if ((max < MIN_PG_CONNECTIONS)); then
        log "raising PostgreSQL max_connections from $max to $MIN_PG_CONNECTIONS (restart)"
        pg_tcp "$port" "alter system set max_connections = $MIN_PG_CONNECTIONS" >/dev/null
        pg_ctl restart || {
            pg_show_log
            die "could not restart PostgreSQL cluster $PG_VER/$PG_CLUSTER"
        }
        if ! wait_until "PostgreSQL to come back after restart" pg_accepting "$port"; then
            pg_show_log
            die "PostgreSQL did not come back within ${TIMEOUT}s after restart"
        fi
        max=$(pg_tcp "$port" 'show max_connections')
        ((max >= MIN_PG_CONNECTIONS)) ||
            die "max_connections is still $max after restart (overridden on the command line?)"
    fi
}

# Prepend trust lines for 127.0.0.1 and ::1 to pg_hba.conf and reload.
pg_trust_localhost() {
    local hba
    hba=$(as_postgres psql -X -w -q -p "$PG_CLUSTER_PORT" -d postgres -Atc 'show hba_file' 2>/dev/null) ||
        hba="/etc/postgresql/$PG_VER/$PG_CLUSTER/pg_hba.conf"
    as_root test -f "$hba" || die "pg_hba.conf not found at $hba"
    local backup
    backup="$hba.warren-backup.$(date +%Y%m%d%H%M%S)"
    log "enabling trust auth for 127.0.0.1 and ::1 in $hba (backup: $backup)"
    as_root cp -p "$hba" "$backup"
    local tmp
    tmp=$(mktemp)
    {
        echo '# Added by Warren deploy/local/services.sh: local TCP without password.'
        echo 'host    all    all    127.0.0.1/32    trust'
        echo 'host    all    all    ::1/128         trust'
        as_root cat "$backup"
    } >"$tmp"
    # Overwrite in place to keep the file's owner and mode.
    as_root tee "$hba" <"$tmp" >/dev/null
    rm -f "$tmp"
    pg_ctl reload
    sleep 1
    pg_tcp "$PG_CLUSTER_PORT" 'select 1' >/dev/null ||
        die "psql -h 127.0.0.1 -U postgres still fails after editing $hba"
}

# ---------------------------------------------------------------------------
# RabbitMQ helpers

# The Debian wrappers only let root or the rabbitmq user run these tools.
# `ping` already succeeds while the node is still booting; check_running
# only once the rabbit application is fully up.
rabbit_running() { as_root timeout 30 rabbitmq-diagnostics -q -t 10 check_running >/dev/null 2>&1; }

rabbit_show_log() {
    local f
    for f in /var/log/rabbitmq/startup_err /var/log/rabbitmq/startup_log /var/log/rabbitmq/rabbit@*.log; do
        if [[ -s $f ]]; then
            log "last lines of $f:"
            tail -n 20 "$f" >&2 || true
        fi
    done
}

# The RabbitMQ server node (not the rabbitmqctl/diagnostics escripts, which
# also run as user rabbitmq).
rabbit_server_process() { pgrep -u rabbitmq -f -- '-s rabbit boot' >/dev/null 2>&1; }

RABBIT_STARTS=0
rabbit_start() {
    log "starting RabbitMQ (rabbitmq-server -detached)"
    RABBIT_STARTS=$((RABBIT_STARTS + 1))
    as_root rabbitmq-server -detached || {
        rabbit_show_log
        die "rabbitmq-server -detached failed"
    }
}

# Wait-loop check: true once the node answers; starts the server whenever no
# server process exists (e.g. a node that was still shutting down when we
# first looked has now exited). At most 3 start attempts.
rabbit_up_or_start() {
    rabbit_running && return 0
    if ! rabbit_server_process && ((RABBIT_STARTS < 3)); then
        rabbit_start
    fi
    return 1
}

ensure_rabbitmq_started() {
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        apt_install rabbitmq-server
    fi
    rabbit_running && return 0
    if rabbit_server_process; then
        log "RabbitMQ server process exists but does not answer yet; waiting for it"
    else
        rabbit_start
    fi
}

configure_rabbitmq() {
    if ! wait_until "RabbitMQ to finish booting" rabbit_up_or_start; then
        rabbit_show_log
        die "RabbitMQ not running ('rabbitmq-diagnostics check_running' failed) after ${TIMEOUT}s"
    fi
    # guest/guest is allowed from localhost by default; make sure it exists,
    # has the expected password and can use vhost "/".
    if ! as_root rabbitmqctl -q authenticate_user guest guest >/dev/null 2>&1; then
        local users
        users=$(as_root rabbitmqctl -s list_users) || die "rabbitmqctl list_users failed"
        if awk '$1 == "guest" { found = 1 } END { exit !found }' <<<"$users"; then
            log "resetting RabbitMQ user guest's password to 'guest'"
            as_root rabbitmqctl -q change_password guest guest >/dev/null
        else
            log "creating RabbitMQ user guest/guest"
            as_root rabbitmqctl -q add_user guest guest >/dev/null
            as_root rabbitmqctl -q set_user_tags guest administrator >/dev/null
        fi
    fi
    local perms
    perms=$(as_root rabbitmqctl -s list_user_permissions guest) ||
        die "rabbitmqctl list_user_permissions guest failed"
    if ! awk '$1 == "/" { found = 1 } END { exit !found }' <<<"$perms"; then
        log "granting RabbitMQ user guest permissions on vhost /"
        as_root rabbitmqctl -q set_permissions -p / guest '.*' '.*' '.*' >/dev/null
    fi
}

tcp_open() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

pg_ready() { pg_accepting "$PG_PORT" && pg_tcp "$PG_PORT" 'select 1' >/dev/null 2>&1; }
rabbit_ready() { rabbit_up_or_start && tcp_open "$AMQP_PORT"; }

# ---------------------------------------------------------------------------

main() {
    # Start both first (RabbitMQ boots slowly), then configure, then verify.
    ensure_postgres_running
    ensure_rabbitmq_started
    configure_postgres
    configure_rabbitmq

    if ! wait_until "PostgreSQL on 127.0.0.1:$PG_PORT" pg_ready; then
        pg_show_log
        die "PostgreSQL not usable at postgres@127.0.0.1:$PG_PORT after ${TIMEOUT}s (pg_isready / psql 'select 1' failed)"
    fi
    if ! wait_until "RabbitMQ on 127.0.0.1:$AMQP_PORT" rabbit_ready; then
        rabbit_show_log
        die "RabbitMQ not reachable at 127.0.0.1:$AMQP_PORT after ${TIMEOUT}s (check_running or TCP connect failed)"
    fi
    echo "services: postgres ok (127.0.0.1:$PG_PORT), rabbitmq ok (127.0.0.1:$AMQP_PORT)"
}

main "$@"
