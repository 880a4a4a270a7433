#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for user postgres:
# the machine's own cluster if it runs or can be started, else a throwaway cluster under /tmp.
set -euo pipefail

host=127.0.0.1
port="${TIANFU_TEST_POSTGRES_PORT:-5432}"
answers() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }

answers && exit 0

if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
    for version in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    done
    for _ in $(seq 1 30); do answers && exit 0; sleep 1; done
fi

bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[[ -x "$bindir/initdb" ]] || { echo "no PostgreSQL server found (install postgresql-15)" >&2; exit 1; }
datadir="$(mktemp -d /tmp/tianfu-pg.XXXXXX)"
chown postgres "$datadir" 2>/dev/null || true
run_as_postgres() { if [[ "$(id -u)" -eq 0 ]]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
echo "starting a throwaway PostgreSQL cluster in $datadir on port $port" >&2
run_as_postgres "'$bindir/initdb' -D '$datadir' -U postgres --auth=trust -E UTF8 >/dev/null"
run_as_postgres "'$bindir/pg_ctl' -D '$datadir' -o '-h $host -p $port -k /tmp' -l '$datadir/log' -w start >/dev/null"
answers || { echo "PostgreSQL did not start; see $datadir/log" >&2; exit 1; }
