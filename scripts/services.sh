#!/usr/bin/env bash
# Starts, idempotently, the services the connector tests need, and waits until each answers
# on loopback: PostgreSQL (127.0.0.1:5432, user postgres, database `test`, loopback login
# without a password) and RabbitMQ (127.0.0.1:5672, guest/guest). Installs a service with
# apt when it is missing. Exits non-zero, naming the service, when one cannot be made ready:
# tests that need a service fail without it, they never skip.
#
#   scripts/services.sh              # both
#   scripts/services.sh postgres     # only these
#
# Tests read AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f) and DATABASE_URL
# (default postgres://postgres@127.0.0.1:5432/test).
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

services=("$@")
[ "${#services[@]}" -gt 0 ] || services=(postgres rabbitmq)
for service in "${services[@]}"; do
    case "$service" in
        postgres) postgres ;;
        rabbitmq) rabbitmq ;;
        *)
            log "unknown service $service (known: postgres rabbitmq)"
            exit 2
            ;;
    esac
done
