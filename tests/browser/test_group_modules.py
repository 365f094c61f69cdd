"""The group-conversation modules on their own, in Chromium, without a server (issue 14):
mention parsing and highlighting, the typing throttle and wording, unread counting, and the
reducer's reactions / superseded / typing / stopped_by / room-change lines.

Served from the working tree through Playwright's routing, like test_ui_modules.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.test_ui_modules import ORIGIN, _serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

pytestmark = pytest.mark.browser

IMPORTS = {
    name: f"/static/js/room/{file}.js"
    for name, file in {
        "roomchat/state": "state",
        "roomchat/group": "group",
        "roomchat/typing": "typing",
        "roomchat/mentions": "mentions",
        "roomchat/mentionbox": "mentionbox",
        "roomchat/unread": "unread",
        "roomchat/reactions": "reactions",
        "roomchat/markdown": "markdown",
    }.items()
} | {
    "vendor/marked": "/static/vendor/marked/marked.esm.js",
    "vendor/dompurify": "/static/vendor/dompurify/purify.es.js",
    "vendor/highlight": "/static/vendor/highlight/highlight.min.js",
}
PAGE = f"""<!doctype html><html><head><meta charset="utf-8">
<script type="importmap">{json.dumps({"imports": IMPORTS})}</script>
<script type="module">
  import * as state from "roomchat/state";
  import * as group from "roomchat/group";
  import * as typing from "roomchat/typing";
  import * as mentions from "roomchat/mentions";
  import * as mentionbox from "roomchat/mentionbox";
  import * as unread from "roomchat/unread";
  import * as reactions from "roomchat/reactions";
  import * as markdown from "roomchat/markdown";
  window.modules = {{ state, group, typing, mentions, mentionbox, unread, reactions, markdown }};
</script></head><body></body></html>"""


def _serve_page(route: Route) -> None:
    if route.request.url.removeprefix(ORIGIN).split("?")[0] == "/":
        route.fulfill(status=200, content_type="text/html", body=PAGE)
    else:
        _serve(route)


@pytest.fixture
def page(module_browser: Browser) -> Iterator[Page]:
    context = module_browser.new_context()
    errors: list[str] = []
    context.route("**/*", lambda route: route.abort())
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route(f"{ORIGIN}/**", _serve_page)
    page.goto(f"{ORIGIN}/")
    page.wait_for_function("window.modules !== undefined")
    yield page
    context.close()
    assert not errors, errors


def run(page: Page, script: str) -> Any:
    return page.evaluate(
        "() => { const { state, group, typing, mentions, mentionbox, unread, reactions, markdown }"
        " ="
        f" window.modules; {script} }}"
    )


def test_mention_query_candidates_and_completion(page: Page) -> None:
    result = run(
        page,
        """
  const { mentionQuery, mentionCandidates, applyMention } = mentions;
  const t = "hey @bo";
  return {
    query: mentionQuery(t, t.length),
    start: mentionQuery("@", 1),
    email: mentionQuery("mail bob@ex", 11),
    none: mentionQuery("no mention", 10),
    afterSpace: mentionQuery("@bob hi", 7),
    all: mentionCandidates("", ["carol", "bob", "alice", "bob"], "alice"),
    bo: mentionCandidates("bo", ["carol", "bob", "Bobby", "abbot"], "alice"),
    cl: mentionCandidates("CL", ["clara"], null),
    applied: applyMention("hey @bo and", 4, 7, "bob"),
    appliedEnd: applyMention("hey @bo", 4, 7, "bob"),
  };
""",
    )
    assert result["query"] == {"start": 4, "query": "bo"}
    assert result["start"] == {"start": 0, "query": ""}
    assert result["email"] is None
    assert result["none"] is None
    assert result["afterSpace"] is None
    assert result["all"] == ["Claude", "bob", "carol"]
    assert result["bo"] == ["bob", "Bobby", "abbot"]
    assert result["cl"] == ["Claude", "clara"]
    assert result["applied"] == {"text": "hey @bob and", "caret": 9}
    assert result["appliedEnd"] == {"text": "hey @bob ", "caret": 9}


def test_the_mention_list_stays_open_when_the_focus_came_back_before_its_delayed_close(
    page: Page,
) -> None:
    """A blur closes the list 150 ms later (so a click on an option lands first); typing `@`
    after the focus came back within that time must not be undone by that stale close."""
    result = run(
        page,
        """
  document.body.innerHTML =
    '<form><textarea id="t"></textarea><ul id="l" hidden></ul></form><button id="b">x</button>';
  const t = document.getElementById("t");
  const list = document.getElementById("l");
  new mentionbox.MentionBox(t, list, () => ["bob"], () => "alice");
  t.focus();
  document.getElementById("b").focus();  // e.g. a reaction picker took the focus
  t.focus();                             // and the person clicked back into the composer
  t.value = "@";
  t.setSelectionRange(1, 1);
  t.dispatchEvent(new Event("input"));
  const openedAt = !list.hidden;
  return new Promise((done) => setTimeout(() => done({ openedAt, later: !list.hidden,
    options: [...list.querySelectorAll("[role=option]")].map((o) => o.textContent) }), 300));
""",
    )
    assert result == {"openedAt": True, "later": True, "options": ["@Claude", "@bob"]}


def test_mentions_are_found_and_highlighted_outside_code_and_links(page: Page) -> None:
    result = run(
        page,
        """
  const { findMentions, mentions: says, highlightMentions } = mentions;
  const found = findMentions("@claude, ask @Bob. not a@bob or @nobody", ["bob"]);
  const frag = markdown.renderUserMarkdown("hi @bob and @Claude `@bob` [@bob](https://x.test) @eve");
  highlightMentions(frag, ["bob", "eve"], "eve");
  const div = document.createElement("div");
  div.append(frag);
  return {
    found,
    says: [says("thanks @alice!", "alice"), says("alice@home", "alice"), says("@alicia", "alice")],
    spans: [...div.querySelectorAll(".mention")].map((s) => [s.textContent, s.className]),
    again: (() => { highlightMentions(div, ["bob", "eve"], "eve"); return div.querySelectorAll(".mention").length; })(),
  };
""",
    )
    assert result["found"] == [
        {"index": 0, "length": 7, "name": "Claude"},
        {"index": 13, "length": 4, "name": "bob"},
    ]
    assert result["says"] == [True, False, False]
    assert result["spans"] == [
        ["@bob", "mention"],
        ["@Claude", "mention is-claude"],
        ["@eve", "mention is-me"],
    ]
    assert result["again"] == 3  # highlighting twice changes nothing


def test_typing_throttle_and_wording(page: Page) -> None:
    result = run(
        page,
        """
  const { shouldSendTyping, typingNames, typingText } = typing;
  const { reduce, initialState } = state;
  let s = initialState({ username: "alice", slug: "r" });
  const sent = [];
  const apply = (a) => { const r = reduce(s, a); s = r.state; sent.push(...r.outbox); };
  apply({ type: "socket.open", at: 0 });
  apply({ type: "room.snapshot", room: { slug: "r", owner: "alice" }, user: { username: "alice" }, messages: [], generation: null, at: 0 });
  for (const at of [1000, 1500, 2999, 3000, 3100, 5200]) apply({ type: "local.typing", at });
  apply({ type: "typing", username: "bob", at: 10000 });
  apply({ type: "typing", username: "carol", at: 12000 });
  apply({ type: "typing", username: "alice", at: 12000 });
  const at14 = typingNames(s.typing, 14000, "alice");
  const at15 = typingNames(s.typing, 15000, "alice");
  apply({ type: "message.created", message: { id: 1, role: "user", author: "carol", text: "hi", status: "complete", client_msg_id: null }, at: 15500 });
  return {
    sentAt: sent.filter((f) => f.type === "typing").length,
    throttle: [shouldSendTyping(0, 5), shouldSendTyping(1000, 2999), shouldSendTyping(1000, 3000)],
    at14, at15, afterMessage: typingNames(s.typing, 15600, "alice"),
    words: [typingText([]), typingText(["bob"]), typingText(["alice", "bob"]), typingText(["a", "b", "c"]), typingText(["a", "b", "c", "d", "e"])],
  };
""",
    )
    assert result["sentAt"] == 3  # at 1000, 3000 and 5200
    assert result["throttle"] == [True, False, True]
    assert result["at14"] == ["bob", "carol"]
    assert result["at15"] == ["carol"]  # bob's last was 5 s ago
    assert result["afterMessage"] == []  # carol's message arrived
    assert result["words"] == [
        "",
        "bob is typing…",
        "alice and bob are typing…",
        "a, b and c are typing…",
        "a, b and 3 others are typing…",
    ]


def test_unread_counts_and_title(page: Page) -> None:
    result = run(
        page,
        """
  const { countUnread, unreadLabel, titleWithUnread, unseenInRoom, loadSeen, markSeen } = unread;
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  markSeen("a", 10, storage);
  markSeen("a", 5, storage); // never backwards
  markSeen("b", 3, storage);
  const msgs = [
    { id: 9, role: "user", author: "bob" },
    { id: 11, role: "user", author: "me" },
    { id: 12, role: "user", author: "bob" },
    { id: 13, role: "assistant", author: null, superseded: true },
    { id: 14, role: "assistant", author: null },
  ];
  return {
    seen: loadSeen(storage),
    counts: [countUnread([14, 12, 9], 10, 20), countUnread([14, 12, 9], undefined, 20), countUnread([5, 4, 3], 1, 3)],
    labels: [unreadLabel({ count: 0, more: false }), unreadLabel({ count: 2, more: false }), unreadLabel({ count: 3, more: true })],
    titles: [titleWithUnread("Weekend", 0), titleWithUnread("Weekend", 3)],
    unseen: unseenInRoom(msgs, 10, "me"),
  };
""",
    )
    assert result["seen"] == {"a": 10, "b": 3}
    assert result["counts"] == [
        {"count": 2, "more": False},
        {"count": 0, "more": False},
        {"count": 3, "more": True},
    ]
    assert result["labels"] == ["", "2", "3+"]
    assert result["titles"] == ["Weekend · Roomchat", "(3) Weekend · Roomchat"]
    assert result["unseen"] == 2  # 12 and 14: not mine, not superseded


def test_reducer_reactions_superseded_stopped_by_and_room_change_lines(page: Page) -> None:
    result = run(
        page,
        """
  const { reduce, initialState } = state;
  let s = initialState({ username: "alice", slug: "r" });
  const sent = [];
  const apply = (a) => { const r = reduce(s, { at: 1000, ...a }); s = r.state; sent.push(...r.outbox); };
  const room = { slug: "r", title: "R", owner: "alice", model: "m1", provider: "anthropic", system_prompt: "", models: ["m1", "m2"], reply_mode: "always" };
  const u = (id, author) => ({ id, role: "user", author, text: "hi", status: "complete", client_msg_id: null, reactions: {}, in_reply_to: [], superseded: false });
  apply({ type: "socket.open" });
  apply({ type: "room.snapshot", room, user: { username: "alice" }, messages: [u(1, "alice"), u(2, "bob"),
    { id: 3, role: "assistant", author: null, text: "yo", status: "complete", reactions: {}, in_reply_to: [1, 2], superseded: false }], generation: null });
  apply({ type: "local.react", message_id: 3, emoji: "👍" });
  apply({ type: "local.react", message_id: 3, emoji: "💩" }); // not one of the eight
  apply({ type: "reaction.updated", message_id: 3, reactions: { "👍": ["alice", "bob"] } });
  apply({ type: "local.regenerate", message_id: 3 });
  apply({ type: "message.superseded", message_id: 3 });
  apply({ type: "generation.started", message_id: 4, model: "m1" });
  const answered = group.answeredIds(s.messages, 3);
  apply({ type: "local.regenerate", message_id: 4 }); // a reply runs: nothing sent
  apply({ type: "generation.finished", message_id: 4, status: "stopped", text: "y", stop_reason: null, usage: {}, error: null, stopped_by: "bob" });
  // Settings changes come from the server's events, not from comparing rooms.
  const ev = (id, kind, value, actor) => ({ id, kind, value, actor, created_at: "2026-12-04T20:00:0" + id + ".000Z" });
  apply({ type: "room.updated", room: { ...room, model: "m2", reply_mode: "mention" },
    events: [ev(1, "model", "m2", "alice"), ev(2, "reply_mode", "mention", "alice")] });
  apply({ type: "room.updated", room: { ...room, model: "m2", reply_mode: "mention", system_prompt: "be brief" },
    events: [ev(3, "system_prompt", "changed", "alice")] });
  apply({ type: "room.updated", room: { ...room, model: "m2", reply_mode: "mention", system_prompt: "be brief" } });
  apply({ type: "room.updated", room: { ...room, title: "S" } }); // no events: no line
  // A snapshot repeats what we had and brings what we missed (unknown kinds say nothing).
  apply({ type: "room.snapshot", room, user: { username: "alice" }, messages: s.messages, generation: null,
    events: [ev(2, "reply_mode", "mention", "alice"), ev(3, "system_prompt", "changed", "alice"),
      ev(4, "private", "private", null), ev(5, "title", "S", "alice"), ev(6, "colour", "red", "alice")] });
  return {
    sent,
    reactions: s.messages[2].reactions,
    superseded: s.messages[2].superseded,
    answered,
    newest: group.newestReply(s.messages).id,
    stoppedBy: s.messages[3].stopped_by,
    notes: s.roomEvents.map((e) => [e.id, group.eventLine(e)]),
    cleared: group.eventLine(ev(7, "system_prompt", "cleared", "bob")),
    people: group.peopleOf({ ...s, presence: ["carol"] }),
    label: reactions.reactionLabel("👍", ["alice", "bob"]),
  };
""",
    )
    assert result["sent"] == [
        {"type": "reaction.toggle", "message_id": 3, "emoji": "👍"},
        {"type": "generation.regenerate", "message_id": 3},
    ]
    assert result["reactions"] == {"👍": ["alice", "bob"]}
    assert result["superseded"] is True
    assert result["answered"] == [1, 2]  # the streaming regenerated reply answers the same
    assert result["newest"] == 4
    assert result["stoppedBy"] == "bob"
    assert result["notes"] == [
        [1, "alice switched the model to m2"],
        [2, "alice set Claude to answer only when mentioned"],
        [3, "alice changed Claude's instructions"],
        [4, "Someone made the room private"],
        [5, "alice renamed the room to “S”"],
    ]
    assert result["cleared"] == "bob cleared Claude's instructions"
    assert result["people"] == ["alice", "bob", "carol"]
    assert result["label"] == "👍 2: alice, bob"


def test_user_markdown_is_safe_and_unsafe_links_lose_their_link(page: Page) -> None:
    result = run(
        page,
        """
  const div = document.createElement("div");
  div.append(markdown.renderUserMarkdown("**bold**\\nnext <img src=x onerror=alert(1)> [x](javascript:alert(1)) ![i](https://t.test/p.png)"));
  return { html: div.innerHTML, links: [...div.querySelectorAll("a")].map((a) => a.getAttribute("href")), imgs: div.querySelectorAll("img").length, text: div.textContent };
""",
    )
    assert "<strong>bold</strong><br>" in result["html"]
    assert result["imgs"] == 0
    assert result["links"] == ["https://t.test/p.png"]  # the image as a link; javascript: none
    assert "javascript" not in result["html"]
    assert "<img src=x onerror=alert(1)>" in result["text"]  # raw HTML shown as text
