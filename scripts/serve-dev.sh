#!/usr/bin/env bash
# `make run`: migrate, serve with daphne on 127.0.0.1:$PORT, and once the server answers, say
# which URL to open and what to do there. Usage: scripts/serve-dev.sh [VENV]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
port="${PORT:-8000}"
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"

"$venv/bin/python" manage.py migrate --noinput -v 0

if [ -n "${ANTHROPIC_API_KEY:-}" ] || [ "${LLM_PROVIDER:-}" = anthropic ]; then
  model="Claude through Anthropic's API"
elif [ -n "${INFERENCE_URL:-}" ] || [ "${LLM_PROVIDER:-}" = heroku ]; then
  model="Claude through Heroku Managed Inference"
else
  model="the offline demo model (set ANTHROPIC_API_KEY=sk-ant-... for Claude)"
fi

# The banner waits for /healthz, so it is the last thing printed before the request log.
"$venv/bin/python" - "$port" "$model" <<'PY' &
import sys, time, urllib.request

port, model = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        with opener.open(f"{base}/healthz", timeout=2):
            break
    except Exception:
        time.sleep(0.2)
else:
    sys.exit(0)  # daphne did not come up; its own error is above
print(
    f"""
  Roomchat is running. Open {base}/
    1. Sign up at {base}/accounts/signup/ (or: .venv/bin/python manage.py createsuperuser)
    2. Open a room from the lobby, then open the same room in a second tab and write.
  Replies come from {model}. Stop with Ctrl-C.
""",
    flush=True,
)
PY

exec "$venv/bin/daphne" -b 127.0.0.1 -p "$port" chatsite.asgi:application
