"""The room page's JavaScript modules on their own, in Chromium, without a server.

Pages are served from the working tree through Playwright's request routing, so these run in
a second or two: the pure reducer (static/js/room/state.js) against the protocol's tricky
cases, and the Markdown sanitizer (static/js/room/markdown.js) against script injection.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import REPO_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

pytestmark = pytest.mark.browser

ORIGIN = "http://ui.test"
STATIC = REPO_ROOT / "static"
IMPORTS = {
    "roomchat/state": "/static/js/room/state.js",
    "roomchat/group": "/static/js/room/group.js",
    "roomchat/typing": "/static/js/room/typing.js",
    "roomchat/socket": "/static/js/room/socket.js",
    "roomchat/markdown": "/static/js/room/markdown.js",
    "vendor/marked": "/static/vendor/marked/marked.esm.js",
    "vendor/dompurify": "/static/vendor/dompurify/purify.es.js",
    "vendor/highlight": "/static/vendor/highlight/highlight.min.js",
}
PAGE = f"""<!doctype html><html><head><meta charset="utf-8">
<script type="importmap">{json.dumps({"imports": IMPORTS})}</script>
<script type="module">
  import * as state from "roomchat/state";
  import * as markdown from "roomchat/markdown";
  import * as socket from "roomchat/socket";
  window.modules = {{ state, markdown, socket }};
  document.body.dataset.ready = "1";
</script></head><body></body></html>"""


def _serve(route: Route) -> None:
    path = route.request.url.removeprefix(ORIGIN).split("?")[0]
    if path == "/":
        route.fulfill(status=200, content_type="text/html", body=PAGE)
        return
    file = (STATIC / path.removeprefix("/static/")).resolve()
    if not path.startswith("/static/") or STATIC not in file.parents or not file.is_file():
        route.fulfill(status=404, body="not found")
        return
    kind = "text/javascript" if file.suffix == ".js" else mimetypes.guess_type(file.name)[0]
    route.fulfill(
        status=200, content_type=kind or "application/octet-stream", body=file.read_bytes()
    )


@pytest.fixture
def page(module_browser: Browser) -> Iterator[Page]:
    context = module_browser.new_context()
    errors: list[str] = []
    # Nothing leaves the machine: every other URL (a link a test clicks, say) is refused.
    context.route("**/*", lambda route: route.abort())
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route(f"{ORIGIN}/**", _serve)
    page.goto(f"{ORIGIN}/")
    page.wait_for_function("window.modules !== undefined")
    yield page
    context.close()
    assert not errors, errors


def run(page: Page, script: str) -> Any:
    """Evaluate `script` (a function body using `state`, `markdown`, `socket`); its result."""
    return page.evaluate(
        f"() => {{ const {{ state, markdown, socket }} = window.modules; {script} }}"
    )


# --- the reducer ---------------------------------------------------------------------------------

# Shared JS: a synced state with one running reply, plus a helper that applies frames.
SETUP = """
  const { reduce, initialState } = state;
  let s = initialState({ username: "alice", slug: "r" });
  let sent = [];
  const apply = (frame) => { const r = reduce(s, { at: 1000, ...frame }); s = r.state; sent.push(...r.outbox); return r.outbox; };
  apply({ type: "socket.open" });
  const room = { slug: "r", title: "R", owner: "alice", model: "m", provider: "anthropic", system_prompt: "", models: [] };
  const user = (id, cid, text = "hi") => ({ id, role: "user", author: "alice", model: null, text, status: "complete", created_at: "2026-01-01T00:00:00Z", client_msg_id: cid });
"""


def test_deltas_are_applied_in_order_duplicates_dropped_and_gaps_synced(page: Page) -> None:
    result = run(
        page,
        SETUP
        + """
  apply({ type: "room.snapshot", room, user: { username: "alice" }, messages: [
      user(1, "c1"),
      { id: 2, role: "assistant", author: null, model: "m", text: "Hel", status: "streaming", created_at: "2026-01-01T00:00:01Z", client_msg_id: null },
    ], generation: { message_id: 2, seq: 2, text: "Hel" } });
  const out = {};
  out.connection = s.connection;
  apply({ type: "generation.delta", message_id: 2, seq: 1, text: "He" });   // before the snapshot
  apply({ type: "generation.delta", message_id: 2, seq: 2, text: "l" });    // already included
  apply({ type: "generation.delta", message_id: 2, seq: 3, text: "lo" });   // next
  out.afterNext = s.messages[1].text;
  out.syncBeforeGap = sent.filter(f => f.type === "sync").length;
  apply({ type: "generation.delta", message_id: 2, seq: 5, text: "!!" });   // 4 is missing
  apply({ type: "generation.delta", message_id: 2, seq: 6, text: "??" });   // still missing: no second sync
  out.afterGap = s.messages[1].text;
  out.syncs = sent.filter(f => f.type === "sync").length;
  // The answer to the sync heals it; later deltas continue from its seq.
  apply({ type: "room.snapshot", room, user: { username: "alice" }, messages: [user(1, "c1"),
      { id: 2, role: "assistant", author: null, model: "m", text: "Hello!!??", status: "streaming", created_at: "2026-01-01T00:00:01Z", client_msg_id: null }],
      generation: { message_id: 2, seq: 6, text: "Hello!!??" } });
  apply({ type: "generation.delta", message_id: 2, seq: 6, text: "??" });
  apply({ type: "generation.delta", message_id: 2, seq: 7, text: " done" });
  out.healed = s.messages[1].text;
  apply({ type: "generation.finished", message_id: 2, status: "complete", text: "Hello!!?? done", stop_reason: "end_turn", usage: {}, error: null });
  out.final = [s.messages[1].text, s.messages[1].status, s.generation];
  return out;
""",
    )
    assert result["connection"] == "online"
    assert result["afterNext"] == "Hello"
    assert result["syncBeforeGap"] == 0
    assert result["afterGap"] == "Hello"  # the gapped deltas are not shown out of order
    assert result["syncs"] == 1
    assert result["healed"] == "Hello!!?? done"
    assert result["final"] == ["Hello!!?? done", "complete", None]


def test_pending_messages_are_sent_once_and_reconciled_by_client_msg_id(page: Page) -> None:
    result = run(
        page,
        SETUP
        + """
  const out = {};
  // Typed before the first snapshot: queued, not sent.
  out.queuedOutbox = apply({ type: "local.send", text: "first", client_msg_id: "c1" }).length;
  apply({ type: "local.send", text: "second", client_msg_id: "c2" });
  // The snapshot already holds c1 (stored on an earlier connection): only c2 goes out.
  out.onSnapshot = apply({ type: "room.snapshot", room, user: { username: "alice" }, messages: [user(5, "c1", "first")], generation: null });
  out.pendingAfterSnapshot = s.pending.map(p => p.client_msg_id);
  // A second snapshot on the same socket (a sync) must not re-send c2, which is in flight.
  out.onSync = apply({ type: "room.snapshot", room, user: { username: "alice" }, messages: [user(5, "c1", "first")], generation: null });
  apply({ type: "message.created", message: user(6, "c2", "second") });
  out.pendingAfterCreated = s.pending.length;
  out.messages = s.messages.map(m => m.id);
  // Lost socket before the echo: on the next connection it is sent again (the server dedups).
  apply({ type: "local.send", text: "third", client_msg_id: "c3" });
  apply({ type: "socket.closed", retryAt: 2000 });
  out.offline = s.connection;
  apply({ type: "socket.open" });
  out.resend = apply({ type: "room.snapshot", room, user: { username: "alice" }, messages: [user(5, "c1"), user(6, "c2")], generation: null });
  // A refusal marks the in-flight message as failed instead of leaving it "sending".
  apply({ type: "error", code: "rate_limited", message: "slow down", retry_after: 3 });
  out.failed = s.pending.map(p => [p.client_msg_id, p.error && p.error.code]);
  out.retry = apply({ type: "local.retry", client_msg_id: "c3" });
  return out;
""",
    )
    assert result["queuedOutbox"] == 0
    assert result["onSnapshot"] == [
        {"type": "message.send", "text": "second", "client_msg_id": "c2"}
    ]
    assert result["pendingAfterSnapshot"] == ["c2"]
    assert result["onSync"] == []
    assert result["pendingAfterCreated"] == 0
    assert result["messages"] == [5, 6]
    assert result["offline"] == "offline"
    assert result["resend"] == [{"type": "message.send", "text": "third", "client_msg_id": "c3"}]
    assert result["failed"] == [["c3", "rate_limited"]]
    assert result["retry"] == [{"type": "message.send", "text": "third", "client_msg_id": "c3"}]


def test_snapshot_replaces_what_was_shown_and_keeps_joined_older_pages(page: Page) -> None:
    result = run(
        page,
        SETUP
        + """
  const many = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => user(from + i, null, `m${from + i}`));
  apply({ type: "room.snapshot", room, user: { username: "alice" }, messages: many(51, 100), generation: null });
  const out = { hasMore: s.hasMore };
  apply({ type: "history.loaded", messages: many(1, 50), has_more: false });
  out.afterHistory = [s.messages.length, s.messages[0].id, s.hasMore];
  // Reconnect: the new snapshot overlaps what we have, so the older page stays.
  apply({ type: "room.snapshot", room, user: { username: "alice" }, messages: many(52, 101), generation: null });
  out.joined = [s.messages.length, s.messages[0].id, s.messages.at(-1).id];
  // A snapshot that does not join up (long offline) replaces everything.
  apply({ type: "room.snapshot", room, user: { username: "alice" }, messages: many(300, 349), generation: null });
  out.replaced = [s.messages.length, s.messages[0].id, s.hasMore];
  // A reply we were shown as streaming but which ended while we were away.
  apply({ type: "generation.started", message_id: 400, model: "m" });
  out.started = [s.generation.message_id, s.messages.at(-1).status];
  apply({ type: "room.snapshot", room, user: { username: "alice" }, messages: [...many(351, 399),
      { id: 400, role: "assistant", author: null, model: "m", text: "gone", status: "interrupted", created_at: "2026-01-01T00:00:00Z", client_msg_id: null }], generation: null });
  out.ended = [s.generation, s.messages.at(-1).status, s.messages.at(-1).text];
  return out;
""",
    )
    assert result["hasMore"] is True
    assert result["afterHistory"] == [100, 1, False]
    assert result["joined"] == [101, 1, 101]
    assert result["replaced"] == [50, 300, True]
    assert result["started"] == [400, "streaming"]
    assert result["ended"] == [None, "interrupted", "gone"]


def test_retry_notice_stop_and_owner_update_frames(page: Page) -> None:
    result = run(
        page,
        SETUP
        + """
  apply({ type: "room.snapshot", room, user: { username: "alice" }, messages: [], generation: null });
  const out = {};
  apply({ type: "generation.retrying", message_id: 9, attempt: 2, retry_in: 4, reason: "overloaded", model: "m" });
  out.retry = [s.generation.message_id, s.generation.retry.reason, s.messages.at(-1).status];
  out.stop = apply({ type: "local.stop" });
  apply({ type: "generation.delta", message_id: 9, seq: 1, text: "x" });
  out.retryCleared = s.generation.retry;
  out.update = apply({ type: "local.updateRoom", changes: { title: "New" } });
  apply({ type: "room.updated", room: { ...room, title: "New" } });
  out.title = s.room.title;
  return out;
""",
    )
    assert result["retry"] == [9, "overloaded", "streaming"]
    assert result["stop"] == [{"type": "generation.stop", "message_id": 9}]
    assert result["retryCleared"] is None
    assert result["update"] == [{"type": "room.update", "title": "New"}]
    assert result["title"] == "New"


# --- Markdown sanitizing -----------------------------------------------------------------------

ATTACKS = [
    '<img src=x onerror="window.__pwned=1">',
    "<script>window.__pwned=1</script>",
    "[click](javascript:window.__pwned=1)",
    "[click](JaVaScRiPt:window.__pwned=1)",
    "[click](  javascript:window.__pwned=1)",
    "[click](data:text/html,<script>window.__pwned=1</script>)",
    "[click](vbscript:msgbox(1))",
    '<a href="javascript:window.__pwned=1">raw</a>',
    "![pic](javascript:window.__pwned=1)",
    "![pic](https://tracker.example/pixel.png)",
    '<svg onload="window.__pwned=1"></svg>',
    '<iframe src="javascript:window.__pwned=1"></iframe>',
    '<details open ontoggle="window.__pwned=1">x</details>',
    '[x](https://ok.example "title\\" onmouseover=\\"window.__pwned=1")',
    "<style>body{display:none}</style>",
    "<form action=javascript:window.__pwned=1><button>go</button></form>",
]


def test_markdown_renders_attacks_as_inert_text(page: Page) -> None:
    result = run(
        page,
        f"""
  const attacks = {json.dumps(ATTACKS)};
  const host = document.createElement("div");
  document.body.append(host);
  const out = [];
  for (const text of attacks) {{
    host.replaceChildren(markdown.renderMarkdown(text));
    const bad = [];
    for (const el of host.querySelectorAll("*")) {{
      for (const attr of el.attributes) {{
        if (attr.name.startsWith("on")) bad.push(`${{el.tagName}}[${{attr.name}}]`);
        if (["href", "src", "action", "formaction"].includes(attr.name) && !/^(https?:|mailto:|\\/|#)/i.test(attr.value.trim()))
          bad.push(`${{el.tagName}}[${{attr.name}}=${{attr.value}}]`);
      }}
      if (["SCRIPT", "IMG", "IFRAME", "SVG", "STYLE", "FORM", "BUTTON"].includes(el.tagName.toUpperCase())) bad.push(el.tagName);
      if (el.tagName === "A" && el.hasAttribute("href") && el.getAttribute("rel") !== "noopener noreferrer") bad.push("rel");
    }}
    // Clicking what is left must run nothing (safe http(s) links would only open a tab).
    for (const a of host.querySelectorAll("a:not([href^='http'])")) a.click();
    out.push({{ text, bad, html: host.innerHTML, shown: host.textContent }});
  }}
  return {{ out, pwned: typeof window.__pwned }};
""",
    )
    for case in result["out"]:
        assert case["bad"] == [], case
    assert result["pwned"] == "undefined"
    # Raw HTML is not dropped silently: the reader sees what the model wrote.
    shown = {case["text"]: case["shown"] for case in result["out"]}
    for raw in (ATTACKS[0], ATTACKS[1], ATTACKS[7], ATTACKS[10]):
        assert raw in shown[raw], (raw, shown[raw])


def test_markdown_features_render(page: Page) -> None:
    html = run(
        page,
        """
  const host = document.createElement("div");
  host.append(markdown.renderMarkdown("# Title\\n\\n- **one**\\n- two\\n\\n```js\\nconst a = 1;\\n```\\n\\n[site](https://example.com) and `code`"));
  return host.innerHTML;
""",
    )
    assert "<h1>Title</h1>" in html
    assert "<li><strong>one</strong></li>" in html
    assert 'class="hljs language-js"' in html and "hljs-keyword" in html
    assert (
        '<a href="https://example.com" target="_blank" rel="noopener noreferrer">site</a>' in html
    )
    assert "<code>code</code>" in html


# --- reconnecting --------------------------------------------------------------------------------


def test_reconnect_delays_double_with_jitter_up_to_fifteen_seconds(page: Page) -> None:
    delays = run(
        page,
        """
        const rows = [];
        for (let attempt = 0; attempt < 8; attempt++) {
          rows.push([socket.backoffDelay(attempt, () => 0), socket.backoffDelay(attempt, () => 1),
                     ...Array.from({ length: 50 }, () => socket.backoffDelay(attempt))]);
        }
        return rows;
        """,
    )
    for attempt, (low, high, *sampled) in enumerate(delays):
        ceiling = min(15_000, 500 * 2**attempt)
        # Half fixed, half random: reconnecting tabs spread out instead of arriving together.
        assert (low, high) == (ceiling // 2, ceiling), attempt
        assert all(low <= d <= high for d in sampled)
        assert len(set(sampled)) > 10, "no jitter"
