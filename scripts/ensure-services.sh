#!/usr/bin/env bash
# Finds or starts what the tests need: redis-server (each test run starts its own on a free
# port), PostgreSQL when the tests will use it, and Debian's Chromium for the browser tests.
set -euo pipefail

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# PostgreSQL: used when DATABASE_URL names it, or by default under CI=true.
url="${DATABASE_URL:-}"
if [ -z "$url" ] && [ "${CI:-}" = "true" ]; then
  url="postgres://postgres@127.0.0.1:5432/test"
fi
# Only the default local URL is ours to provide; any other server is the caller's to run.
local_pg() { case "$url" in postgres*://*@127.0.0.1:5432/*|postgres*://*@localhost:5432/*) return 0;; esac; return 1; }

pg_answers() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

install_postgres() {
  # A machine without a PostgreSQL server (a bare CI image): Debian's, with trust for loopback
  # TCP only, as the test URL (postgres@127.0.0.1, no password) expects.
  echo "installing PostgreSQL"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  local version hba
  version="$(ls /etc/postgresql | sort -V | tail -n1)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  grep -q "roomchat-tests" "$hba" || sed -i '1i host all all 127.0.0.1/32 trust # roomchat-tests' "$hba"
}

start_postgres() {
  local version
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
  [ -n "$version" ] || return 0
  echo "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload >/dev/null 2>&1 || true
}

case "$url" in
  postgres*)
    if ! pg_answers; then
      if ! command -v pg_ctlcluster >/dev/null && local_pg && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        install_postgres
      fi
      command -v pg_ctlcluster >/dev/null && start_postgres
      for _ in $(seq 1 30); do pg_answers && break; sleep 1; done
      pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
    fi
    # The database the URL names must exist (pytest-django creates its test database beside it).
    if local_pg; then
      db="${url##*/}"; db="${db%%\?*}"
      if ! psql "${url%/*}/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" 2>/dev/null | grep -q 1; then
        echo "creating database $db"
        psql "${url%/*}/postgres" -qc "CREATE DATABASE \"$db\"" || true
      fi
    fi
    ;;
esac
