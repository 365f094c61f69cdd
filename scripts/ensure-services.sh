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
case "$url" in
  postgres*)
    if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
      if command -v pg_ctlcluster >/dev/null; then
        echo "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
      fi
      for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
      pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
    fi
    ;;
esac
