// State → DOM for the room page.
//
// The reducer hands us a whole new state after every frame; rebuilding the page each time
// would lose focus, selection and scroll position, and re-parse every Markdown reply per
// token. So the list is keyed: each message keeps its element, and an element is touched only
// when its message object changed (the reducer keeps unchanged messages identical).
// Rendering is batched to one pass per animation frame, which also caps how often a fast
// stream re-renders Markdown.

import { renderMarkdown, renderUserMarkdown } from "roomchat/markdown";
import { formatTime, retryNotice, errorText, refusalText, endingNote, secondsLeft, STATUS_LABELS } from "roomchat/format";
import { AutoScroller } from "roomchat/scroll";
import { decorateMessage, afterMessages, renderGroupChrome } from "roomchat/groupview";
import { eventLine } from "roomchat/group";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** Copy text to the clipboard, with a fallback for non-secure origins (plain http on a LAN). */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = el("textarea", { class: "visually-hidden", readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  try {
    document.execCommand("copy");
  } finally {
    area.remove();
  }
}

function keyOf(message, me) {
  // A user message keeps one element from "pending" to "stored": both carry its client_msg_id.
  if (message.role === "user" && message.client_msg_id) return `c:${message.author}:${message.client_msg_id}`;
  if (message.id === undefined) return `c:${me}:${message.client_msg_id}`;
  return `m:${message.id}`;
}

const DEMO_TITLE = "Replies come from the built-in demo model: canned text, no real AI.";

export class RoomView {
  /**
   * @param {object} actions  onLoadOlder(), onRetry(clientMsgId), onDiscard(clientMsgId)
   */
  constructor(actions) {
    this.actions = actions;
    this.list = $("messages");
    this.elements = new Map(); // key -> <li>
    this.state = null; // last rendered
    this.queued = null;
    this.frame = 0;

    this.scroller = new AutoScroller($("scroller"), $("jump-latest"), () => {
      if (this.state?.hasMore && !this.state.loadingOlder) this.actions.onLoadOlder();
    });

    // One delegated listener for every copy / retry / discard button in the list.
    this.list.addEventListener("click", (event) => this.onListClick(event));
  }

  /** Render `state` soon (once per frame, however many frames arrive meanwhile). */
  schedule(state) {
    this.queued = state;
    if (this.frame) return;
    const run = () => {
      cancelAnimationFrame(this.frame);
      clearTimeout(this.timeout);
      this.frame = 0;
      const next = this.queued;
      this.queued = null;
      if (next) this.render(next);
    };
    this.frame = requestAnimationFrame(run);
    // Background tabs get no animation frames; they still need to follow along.
    this.timeout = setTimeout(run, 120);
  }

  /** Re-render what depends on the clock (countdowns), without a state change. */
  tick() {
    if (this.state) this.renderChrome(this.state, Date.now());
  }

  render(state) {
    const now = Date.now();
    this.renderChrome(state, now);
    this.renderMessages(state, now);
    this.state = state;
  }

  // ---- everything but the message list ----------------------------------------------------

  renderChrome(state, now) {
    const room = state.room;
    const replying = !!state.generation;
    document.body.dataset.replying = replying ? "1" : "0";

    // Header: title, model, provider, demo badge.
    if (room) {
      const title = room.title || room.slug;
      setText($("room-title"), title);
      document.title = `${title} · Roomchat`;
      const placeholder = `Message ${title}…`;
      if ($("composer-text").placeholder !== placeholder) $("composer-text").placeholder = placeholder;
      setText($("room-model"), room.model || "—");
      setText($("room-provider"), room.provider || "—");
      this.renderDemoBadge(room.provider === "demo");
      $("demo-note").hidden = room.provider !== "demo";
      const owner = room.owner === state.me;
      $("settings-button").hidden = !owner;
      setText($("room-owner"), owner ? "you" : room.owner || "—");
    }

    // Connection.
    document.body.dataset.connection = state.connection;
    const status = $("connection-status");
    status.dataset.state = state.connection;
    let label = { connecting: "Connecting…", online: "Online", offline: "Offline" }[state.connection];
    if (state.fatal) label = "Disconnected";
    else if (state.connection === "offline" && state.retryAt) {
      const left = secondsLeft(state.retryAt, now);
      label = left > 0 ? `Offline · retrying in ${left} s` : "Offline · retrying…";
    }
    setText(status.querySelector(".status-label"), label);
    // Spoken once per state, not once per second of the countdown.
    const spoken = state.fatal
      ? "Disconnected"
      : { connecting: "Connecting", online: "Online", offline: "Offline, reconnecting" }[state.connection];
    setText(status.querySelector(".status-spoken"), spoken);

    // A fatal close: say why, and stop offering to send.
    const fatal = $("fatal");
    fatal.hidden = !state.fatal;
    if (state.fatal) setText(fatal, state.fatal.message);
    const composerText = $("composer-text");
    composerText.disabled = !!state.fatal;
    $("send-button").disabled = !!state.fatal;

    const offlineHint = $("offline-hint");
    offlineHint.hidden = state.connection === "online" || !!state.fatal;

    // Presence.
    this.renderPresence(state);

    // "Claude is replying…", Stop, and the retry notice.
    $("replying").hidden = !replying;
    $("stop-button").hidden = !replying;
    $("stop-button").disabled = !state.synced; // offline, a stop could not reach anyone
    const notice = $("notice");
    const retry = state.generation?.retry;
    notice.hidden = !retry;
    setText(notice.querySelector(".notice-text"), retry ? retryNotice(retry, room?.model, now) : "");
    // As of the moment it arrived: announced once per retry, the countdown is for the eyes.
    setText(notice.querySelector(".notice-spoken"), retry ? retryNotice(retry, room?.model, retry.at) : "");

    // Server error frames, near the composer.
    const errorBox = $("error");
    errorBox.hidden = !state.error;
    errorBox.dataset.code = state.error?.code || "";
    setText(errorBox.querySelector(".error-text"), state.error ? errorText(state.error, now) : "");
    setText(
      errorBox.querySelector(".error-spoken"),
      state.error ? errorText(state.error, state.error.at ?? now) : "",
    );

    // History controls.
    const older = $("load-older");
    older.hidden = !state.hasMore;
    older.disabled = state.loadingOlder;
    setText(older, state.loadingOlder ? "Loading older messages…" : "Load older messages");

    $("empty-room").hidden = !(state.synced && state.messages.length === 0 && state.pending.length === 0);
    renderGroupChrome(state, now);
  }

  renderDemoBadge(isDemo) {
    let badge = $("demo-badge");
    if (isDemo && !badge) {
      badge = el("span", { id: "demo-badge", class: "badge badge-demo", title: DEMO_TITLE, text: "Demo model" });
      $("room-facts").append(badge);
    } else if (!isDemo && badge) {
      badge.remove();
    }
  }

  renderPresence(state) {
    const users = state.presence;
    const key = users.join("\n") + "|" + state.me;
    const list = $("presence");
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    // The list's text is exactly the usernames: the avatar letter and "(you)" come from CSS.
    list.replaceChildren(
      ...users.map((name) =>
        el(
          "li",
          { class: name === state.me ? "presence-user is-me" : "presence-user", "data-username": name },
          el("span", { class: `avatar avatar-sm ${avatarHue(name)}`, "aria-hidden": "true", "data-initial": initial(name) }),
          el("span", { class: "presence-name", text: name }),
        ),
      ),
    );
    setText($("presence-count"), String(users.length));
  }

  // ---- the message list ----------------------------------------------------------------------

  renderMessages(state, now) {
    const items = [];
    const keys = new Set();
    for (const m of state.messages) {
      const key = keyOf(m, state.me);
      keys.add(key);
      items.push({ key, message: m, pending: null });
    }
    for (const p of state.pending) {
      const key = `c:${state.me}:${p.client_msg_id}`;
      if (keys.has(key)) continue;
      keys.add(key);
      items.push({ key, message: null, pending: p });
    }
    const marker = summaryMarkerIndex(state);
    if (marker >= 0) {
      items.splice(marker, 0, { key: SUMMARY_KEY, message: null, pending: null });
      keys.add(SUMMARY_KEY);
    }
    // Quiet lines saying the room's settings changed, among the messages by time (events come
    // in id order, so a line also goes after the lines before it).
    for (const event of state.roomEvents || []) {
      const text = eventLine(event);
      if (!text) continue;
      const at = items.findLastIndex((it) => it.note || (it.message && it.message.created_at <= event.created_at));
      if (at < 0 && state.hasMore) continue; // before the part of the conversation shown
      const note = { key: `event:${event.id}`, text };
      items.splice(at + 1, 0, { key: note.key, message: null, pending: null, note });
      keys.add(note.key);
    }

    const firstBefore = this.list.firstElementChild;
    const countBefore = this.list.childElementCount;
    const lastTextBefore = this.lastTextLength ?? 0;
    this.scroller.before(firstBefore);

    let ref = this.list.firstElementChild;
    for (const item of items) {
      let node = this.elements.get(item.key);
      if (!node) {
        node = item.note ? createRoomNote(item.note) : item.key === SUMMARY_KEY ? createSummaryMarker() : this.createMessage();
        this.elements.set(item.key, node);
      }
      const source = item.message || item.pending;
      if (source && (node._source !== source || node._me !== state.me)) {
        if (item.message) this.updateMessage(node, item.message, state, now);
        else this.updatePending(node, item.pending, state, now);
        node._source = source;
        node._me = state.me;
      }
      if (node === ref) ref = ref.nextElementSibling;
      else this.list.insertBefore(node, ref);
    }
    for (const [key, node] of this.elements) {
      if (!keys.has(key)) {
        node.remove();
        this.elements.delete(key);
      }
    }

    afterMessages(state);

    // Did older messages arrive at the top, or did content grow at the bottom?
    const prepended = !!firstBefore && firstBefore.isConnected && this.list.firstElementChild !== firstBefore;
    const lastText = items.length ? textLength(items[items.length - 1]) : 0;
    const grew = this.list.childElementCount > countBefore || lastText !== lastTextBefore;
    this.lastTextLength = lastText;
    this.scroller.after({ prepended, grew });
  }

  createMessage() {
    const author = el("span", { class: "message-author" });
    const model = el("span", { class: "message-model" });
    const time = el("time", { class: "message-time" });
    const badge = el("span", { class: "badge message-badge" });
    const copy = el("button", { type: "button", class: "icon-btn copy-reply", "data-action": "copy-reply", title: "Copy reply", "aria-label": "Copy reply" });
    copy.append(copyIcon(), el("span", { class: "copy-label", text: "Copy" }));
    const avatar = el("span", { class: "avatar", "aria-hidden": "true" });
    const body = el("div", { class: "message-body" });
    const note = el("p", { class: "message-note" });
    const actions = el("div", { class: "message-actions" });
    const li = el(
      "li",
      { class: "message" },
      avatar,
      el("div", { class: "message-main" }, el("div", { class: "message-meta" }, author, model, time, badge, copy), body, note, actions),
    );
    li._parts = { avatar, author, model, time, badge, copy, body, note, actions };
    return li;
  }

  updateMessage(li, m, state, now) {
    const p = li._parts;
    const assistant = m.role === "assistant";
    li.dataset.id = String(m.id);
    li.dataset.role = m.role;
    li.dataset.status = m.status;
    li.classList.toggle("is-mine", !assistant && m.author === state.me);
    li.classList.toggle("is-assistant", assistant);
    // A streaming reply changes many times a second: tell screen readers to wait for the end.
    if (m.status === "streaming") li.setAttribute("aria-busy", "true");
    else li.removeAttribute("aria-busy");

    const author = assistant ? "Claude" : m.author || "unknown";
    setText(p.author, author);
    p.avatar.textContent = assistant ? "✳" : initial(author);
    p.avatar.className = assistant ? "avatar avatar-claude" : `avatar ${avatarHue(author)}`;
    setText(p.model, assistant && m.model ? m.model : "");
    p.model.hidden = !(assistant && m.model);
    setTime(p.time, m.created_at, now);
    setBadge(p.badge, m.status === "complete" ? null : m.status);
    p.copy.hidden = !assistant || !m.text;

    // The body: the same sanitized Markdown for Claude and for people.
    if (li._text !== m.text || li._role !== m.role) {
      if (m.text) {
        const fragment = assistant ? renderMarkdown(m.text) : renderUserMarkdown(m.text);
        enhanceCodeBlocks(fragment);
        p.body.replaceChildren(fragment);
      } else {
        p.body.replaceChildren();
      }
      li._text = m.text;
      li._role = m.role;
    }
    p.body.classList.add("is-markdown");
    p.body.classList.toggle("is-streaming", m.status === "streaming");
    p.body.classList.toggle("is-waiting", m.status === "streaming" && !m.text);

    const note = assistant ? endingNote(m) : "";
    setText(p.note, note);
    p.note.hidden = !note;
    p.note.dataset.status = m.status;
    p.actions.replaceChildren();
    p.actions.hidden = true;
    decorateMessage(li, m, state);
  }

  updatePending(li, pending, state, now) {
    const p = li._parts;
    const failed = !!pending.error;
    delete li.dataset.id;
    li.dataset.id = "";
    li.dataset.role = "user";
    li.dataset.status = failed ? "failed" : "pending";
    li.dataset.clientMsgId = pending.client_msg_id;
    li.classList.add("is-mine");
    li.classList.remove("is-assistant");
    li.removeAttribute("aria-busy");
    setText(p.author, state.me || "you");
    p.avatar.textContent = initial(state.me || "?");
    p.avatar.className = `avatar ${avatarHue(state.me || "?")}`;
    p.model.hidden = true;
    setTime(p.time, pending.created_at, now);
    setBadge(p.badge, failed ? "failed" : "pending");
    p.badge.title = failed ? "" : state.connection === "online" ? "Sending…" : "Will be sent when you're back online";
    p.copy.hidden = true;
    if (li._text !== pending.text || li._role !== "user") {
      p.body.replaceChildren(renderUserMarkdown(pending.text));
      li._text = pending.text;
      li._role = "user";
    }
    p.body.classList.add("is-markdown");
    p.body.classList.remove("is-streaming", "is-waiting");
    const note = failed ? `Not sent: ${refusalText(pending.error)}` : "";
    setText(p.note, note);
    p.note.hidden = !failed;
    p.note.dataset.status = failed ? "failed" : "";
    if (failed) {
      p.actions.replaceChildren(
        el("button", { type: "button", class: "btn btn-sm", "data-action": "retry", "data-client-msg-id": pending.client_msg_id, text: "Retry" }),
        el("button", { type: "button", class: "btn btn-sm btn-ghost", "data-action": "discard", "data-client-msg-id": pending.client_msg_id, text: "Discard" }),
      );
      p.actions.hidden = false;
    } else {
      p.actions.replaceChildren();
      p.actions.hidden = true;
    }
  }

  async onListClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button || !this.list.contains(button)) return;
    const action = button.dataset.action;
    if (action === "retry") return this.actions.onRetry(button.dataset.clientMsgId);
    if (action === "discard") return this.actions.onDiscard(button.dataset.clientMsgId);
    let text = null;
    if (action === "copy-code") text = button.closest(".code-block")?.querySelector("code")?.textContent ?? "";
    if (action === "copy-reply") text = button.closest(".message")?._text ?? "";
    if (text === null) return;
    try {
      await copyText(text);
      flash(button, "Copied");
    } catch (err) {
      console.error("copy:", err);
      flash(button, "Copy failed");
    }
  }
}

// ---- small helpers ---------------------------------------------------------------------------

function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

function setTime(node, iso, now) {
  const { short, long } = formatTime(iso, new Date(now));
  if (node.getAttribute("datetime") !== iso) node.setAttribute("datetime", iso || "");
  setText(node, short);
  node.title = long;
}

function setBadge(node, status) {
  node.hidden = !status;
  node.dataset.status = status || "";
  setText(node, status ? STATUS_LABELS[status] || status : "");
}

function textLength(item) {
  return (item.message || item.pending)?.text?.length ?? 0;
}

// ---- the summary marker ----------------------------------------------------------------------
// In a long room the server folds older messages into a summary that Claude reads instead of
// them (docs/protocol.md, `Room.summary_upto_id`). People still see every message; a divider
// after the last folded one shows where Claude's word-for-word memory begins.

const SUMMARY_KEY = "summary-marker";

/** Where the divider goes in the rendered list, or -1 when none is due. */
function summaryMarkerIndex(state) {
  const upto = state.room?.summary_upto_id || 0;
  const messages = state.messages;
  // Only when the boundary is among what is shown: the last folded message is loaded, and a
  // later one follows it (else the divider would sit above or below nothing).
  if (!upto || !messages.length || messages[0].id > upto) return -1;
  return messages.findIndex((m) => m.id > upto);
}

function createSummaryMarker() {
  return el(
    "li",
    { class: "summary-marker", role: "separator", "aria-label": "Claude reads the messages above as a summary" },
    el("span", { class: "summary-marker-label", text: "Claude reads the messages above as a summary" }),
  );
}

function initial(name) {
  return (Array.from(name || "?")[0] || "?").toUpperCase();
}

/** A stable, pleasant hue per username (one of 12 CSS classes: no style attributes, for the
 *  CSP), so people are easy to tell apart. */
function avatarHue(name) {
  let hash = 0;
  for (const ch of name || "") hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `hue-${hash % 12}`;
}

/** A quiet line in the conversation: the room's model, instructions or reply mode changed. */
function createRoomNote(note) {
  return el("li", { class: "room-note", "data-note": note.key }, el("span", { class: "room-note-text", text: note.text }));
}

function copyIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const a = document.createElementNS(ns, "rect");
  Object.entries({ x: "9", y: "9", width: "11", height: "11", rx: "2" }).forEach(([k, v]) => a.setAttribute(k, v));
  const b = document.createElementNS(ns, "path");
  b.setAttribute("d", "M5 15V5a2 2 0 0 1 2-2h10");
  svg.append(a, b);
  return svg;
}

/** Give each sanitized code block its copy button (our own element, added after sanitizing). */
function enhanceCodeBlocks(fragment) {
  for (const block of fragment.querySelectorAll(".code-block")) {
    const button = el("button", { type: "button", class: "icon-btn copy-code", "data-action": "copy-code", title: "Copy code", "aria-label": "Copy code" });
    button.append(copyIcon(), el("span", { class: "copy-label", text: "Copy" }));
    block.prepend(button);
    // A wide block scrolls sideways: keyboard users must be able to reach it to scroll it.
    const pre = block.querySelector("pre");
    if (pre) pre.tabIndex = 0;
  }
}

function flash(button, text) {
  const label = button.querySelector(".copy-label");
  if (!label) return;
  const before = label.dataset.original || label.textContent;
  label.dataset.original = before;
  label.textContent = text;
  button.classList.add("is-done");
  clearTimeout(button._flash);
  button._flash = setTimeout(() => {
    label.textContent = before;
    button.classList.remove("is-done");
  }, 1500);
}
