// The group conversation in the DOM (SPEC §6-§7), called by render.js at three points:
//   decorateMessage(li, m, state)  after a message's element is (re)drawn: id anchor, "answering
//                                  alice and bob", mentions highlighted, reactions
//   afterMessages(state)           once per render over the whole list: the Regenerate button
//                                  on the newest reply, earlier versions folded, a reply whose
//                                  stream the connection lost
//   renderGroupChrome(state, now)  the reply-mode chip, "bob is typing…", the lost connection
//                                  in the replying bar, the tab title's unread count
// and bindGroupActions(list, actions) wires the buttons it draws (delegated clicks).

import { answeredIds, newestReply, peopleOf, REPLY_MODES } from "roomchat/group";
import { highlightMentions } from "roomchat/mentions";
import { renderReactions } from "roomchat/reactions";
import { typingNames, typingText } from "roomchat/typing";
import { titleWithUnread } from "roomchat/unread";

const $ = (id) => document.getElementById(id);

const openPickers = new Set(); // message ids whose emoji picker is open
const expanded = new Set(); // reply ids whose earlier versions are shown
let lastState = null;
let titleUnread = () => 0; // set by the room list (roomlist.js)
let regenerate = null; // the one Regenerate button, moved to the newest reply

export function setTitleUnread(fn) {
  titleUnread = fn;
}

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function parts(li) {
  if (li._group) return li._group;
  const main = li.querySelector(".message-main");
  const context = make("p", "message-context");
  context.hidden = true;
  const tools = make("div", "message-tools");
  const reactions = make("div", "message-reactions");
  main.querySelector(".message-meta").after(context);
  main.append(tools, reactions);
  li._group = { context, tools, reactions };
  return li._group;
}

/** "alice", "alice and bob", "alice, bob and carol". */
export function joinNames(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

function renderContext(node, m, state) {
  if (m.role !== "assistant") {
    node.hidden = true;
    return;
  }
  const index = state.messages.findIndex((x) => x.id === m.id);
  const ids = index >= 0 ? answeredIds(state.messages, index) : [];
  const byAuthor = new Map(); // author -> the first message of theirs it answers
  for (const id of ids) {
    const source = state.messages.find((x) => x.id === id);
    const author = source?.author;
    if (author && !byAuthor.has(author)) byAuthor.set(author, id);
  }
  const key = JSON.stringify([...byAuthor]);
  node.hidden = byAuthor.size === 0;
  if (node.dataset.key === key) return;
  node.dataset.key = key;
  const links = [...byAuthor].map(([author, id]) => {
    const a = make("a", "answer-link", author);
    a.href = `#m-${id}`;
    return a;
  });
  const pieces = ["answering "];
  links.forEach((link, i) => {
    if (i > 0) pieces.push(i === links.length - 1 ? " and " : ", ");
    pieces.push(link);
  });
  node.replaceChildren(...pieces);
}

export function decorateMessage(li, m, state) {
  if (typeof m.id !== "number") return;
  li.id = `m-${m.id}`;
  const g = parts(li);
  renderContext(g.context, m, state);
  highlightMentions(li.querySelector(".message-body"), peopleOf(state), state.me);
  li.classList.toggle("is-superseded", !!m.superseded);
  g.reactions._message = m;
  renderReactions(g.reactions, m, state.me, openPickers.has(m.id));
}

// ---- the whole list -------------------------------------------------------------------------------

function regenerateButton() {
  if (!regenerate) {
    regenerate = make("button", "btn btn-sm btn-ghost regenerate", "Regenerate");
    regenerate.type = "button";
    regenerate.dataset.action = "regenerate";
    regenerate.title = "Ask Claude to answer the same messages again";
  }
  return regenerate;
}

function foldButton(li) {
  const g = parts(li);
  let button = g.tools.querySelector(".fold-toggle");
  if (!button) {
    button = make("button", "btn btn-sm btn-ghost fold-toggle");
    button.type = "button";
    button.dataset.action = "fold";
    g.tools.prepend(button);
  }
  return button;
}

export function afterMessages(state) {
  lastState = state;
  const messages = state.messages;

  // Earlier versions fold under the reply that replaced them.
  let folded = [];
  for (const m of messages) {
    if (m.role !== "assistant") continue;
    if (m.superseded) {
      folded.push(m);
      continue;
    }
    const host = $(`m-${m.id}`);
    const open = expanded.has(m.id);
    if (host) {
      const button = folded.length ? foldButton(host) : host._group?.tools.querySelector(".fold-toggle");
      if (button && !folded.length) button.remove();
      if (folded.length) {
        const n = folded.length;
        button.textContent = open ? `Hide ${n === 1 ? "earlier version" : "earlier versions"}` : `${n} earlier version${n === 1 ? "" : "s"}`;
        button.setAttribute("aria-expanded", open ? "true" : "false");
        button.setAttribute("aria-controls", folded.map((f) => `m-${f.id}`).join(" "));
        button.dataset.replyId = String(m.id);
      }
    }
    for (const f of folded) {
      const node = $(`m-${f.id}`);
      if (node) node.hidden = !open;
    }
    folded = [];
  }
  for (const f of folded) {
    const node = $(`m-${f.id}`); // replaced, but the new version has not arrived yet
    if (node) node.hidden = false;
  }

  // Regenerate: on the newest reply, when no reply runs.
  const newest = newestReply(messages);
  const canRegenerate =
    newest && newest.status !== "streaming" && !state.generation && state.synced && !state.fatal;
  const button = regenerateButton();
  const holder = canRegenerate ? $(`m-${newest.id}`) : null;
  if (holder) {
    const tools = parts(holder).tools;
    if (button.parentElement !== tools) tools.append(button);
    button.dataset.messageId = String(newest.id);
  } else if (button.isConnected) {
    button.remove();
  }

  // A reply whose stream we can no longer hear.
  const lost = state.connection !== "online";
  for (const node of document.querySelectorAll("#messages .message[data-status='streaming'], #messages .message.is-lost")) {
    node.classList.toggle("is-lost", lost && node.dataset.status === "streaming");
    const note = node.querySelector(".message-note");
    if (note && lost && node.dataset.status === "streaming") {
      note.textContent = "Connection lost: this reply continues on the server and shows up when you reconnect.";
      note.hidden = false;
      note.dataset.status = "lost";
    } else if (note && note.dataset.status === "lost") {
      note.textContent = "";
      note.hidden = true;
      note.dataset.status = "streaming";
    }
  }
}

// ---- the chrome -----------------------------------------------------------------------------------

function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

const EMPTY_ROOM = {
  always: "No messages yet. Say hello — Claude answers everyone in the room.",
  mention: "No messages yet. Talk freely — Claude answers when someone writes @Claude.",
  auto: "No messages yet. Say hello — Claude joins in when it is wanted, and always answers @Claude.",
};

export function renderGroupChrome(state, now) {
  const room = state.room;
  const chip = $("reply-mode");
  if (chip && room) {
    const mode = room.reply_mode || "always";
    setText(chip, { always: "every message", mention: "@mention", auto: "auto" }[mode] || mode);
    chip.title = REPLY_MODES[mode] || "";
    chip.dataset.mode = mode;
  }
  setText($("empty-room"), EMPTY_ROOM[room?.reply_mode] || EMPTY_ROOM.always);
  // The demo provider: one "Demo model" badge says it all (not "demo" three times).
  const demo = room?.provider === "demo";
  for (const id of ["room-model", "room-provider"]) {
    const fact = $(id)?.closest(".fact");
    if (fact) fact.hidden = demo;
  }

  const typing = $("typing-status");
  if (typing) setText(typing, typingText(typingNames(state.typing, now, state.me)));

  // "Claude is replying…" must not keep animating while we cannot hear the reply.
  const lost = !!state.generation && state.connection !== "online";
  const replying = $("replying");
  if (replying) {
    replying.classList.toggle("is-lost", lost);
    setText(replying.querySelector(".replying-text"), lost ? "Connection lost" : "Claude is replying…");
  }
  const reconnect = $("reconnect-now");
  if (reconnect) reconnect.hidden = state.connection !== "offline" || !!state.fatal;

  if (room) {
    const title = titleWithUnread(room.title || room.slug, titleUnread(state));
    if (document.title !== title) document.title = title;
  }
}

// ---- clicks ----------------------------------------------------------------------------------------

/** actions: react(messageId, emoji), regenerate(messageId), focusComposer(). */
export function bindGroupActions(list, actions) {
  list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || !list.contains(button)) return;
    const li = button.closest(".message");
    const id = Number(li?.dataset.id);
    switch (button.dataset.action) {
      case "react": {
        actions.react(id, button.dataset.emoji);
        if (openPickers.delete(id)) redrawReactions(li, ".reaction-add");
        break;
      }
      case "react-menu": {
        if (!openPickers.delete(id)) openPickers.add(id);
        redrawReactions(li, openPickers.has(id) ? ".reaction-choice" : ".reaction-add");
        break;
      }
      case "regenerate":
        actions.regenerate(Number(button.dataset.messageId));
        actions.focusComposer(); // the button goes away once the new reply starts
        break;
      case "fold": {
        const replyId = Number(button.dataset.replyId);
        if (!expanded.delete(replyId)) expanded.add(replyId);
        if (lastState) afterMessages(lastState);
        break;
      }
      default:
    }
  });
  list.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const li = event.target.closest?.(".message");
    const id = Number(li?.dataset.id);
    if (li && openPickers.delete(id)) redrawReactions(li, ".reaction-add");
  });
}

function redrawReactions(li, focusSelector) {
  const container = li?._group?.reactions;
  if (!container?._message || !lastState) return;
  const id = container._message.id;
  renderReactions(container, container._message, lastState.me, openPickers.has(id));
  container.querySelector(focusSelector)?.focus();
}
