// The room page: wires the socket, the reducer and the view together, plus the composer,
// the owner's settings dialog and the history loader. Module map (see the import map in
// rooms/room.html):
//   roomchat/state     pure reducer: frames and user actions -> new state + frames to send
//   roomchat/socket    the websocket, reconnect with backoff + jitter, fatal close codes
//   roomchat/render    state -> DOM (keyed, batched per animation frame)
//   roomchat/markdown  untrusted Markdown -> sanitized DOM
//   roomchat/scroll    stick-to-bottom, "Jump to latest", keep place when history loads
//   roomchat/format    wording: times, countdowns, notices

import { initialState, reduce, PAGE_SIZE } from "roomchat/state";
import { RoomSocket, socketUrl } from "roomchat/socket";
import { RoomView } from "roomchat/render";
import { setupGroup } from "roomchat/groupui";
import { BudgetView } from "roomchat/budget";
import { setupAccess } from "roomchat/access";

// The protocol's rule (SPEC §6): a tab that hears nothing for 15 s while a reply runs asks
// for a snapshot, in case the rest of the stream was lost.
const QUIET_REPLY_MS = 15000;

const data = JSON.parse(document.getElementById("room-data").textContent);
const loginUrl = () => `/accounts/login/?next=${encodeURIComponent(window.location.pathname)}`;

let state = initialState({ username: data.username, slug: data.slug, room: data.room ?? null });
let lastReplyFrameAt = Date.now(); // the latest frame that says how the reply stands

const budget = new BudgetView(document.getElementById("budget")); // today's spend (budget.js)
const view = new RoomView({
  onLoadOlder: loadOlder,
  onRetry: (clientMsgId) => dispatch({ type: "local.retry", client_msg_id: clientMsgId }),
  onDiscard: (clientMsgId) => dispatch({ type: "local.discard", client_msg_id: clientMsgId }),
});

const socket = new RoomSocket(socketUrl(data.ws_path), {
  connecting: () => dispatch({ type: "socket.connecting" }),
  open: () => dispatch({ type: "socket.open" }),
  frame: (frame) => {
    // Presence or other people's messages say nothing about the reply: only these reset
    // the quiet-reply watchdog.
    if (frame.type?.startsWith("generation.") || frame.type === "room.snapshot") {
      lastReplyFrameAt = Date.now();
    }
    dispatch(frame);
    group.onFrame(frame, state);
    budget.onFrame(frame, state);
    access.onFrame(frame, state);
  },
  closed: ({ retryAt }) => dispatch({ type: "socket.closed", retryAt }),
  fatal: ({ code }) => {
    if (code === 4401) {
      // Signed out (or the session expired): the login page brings the reader back here.
      window.location.assign(loginUrl());
      return;
    }
    const message =
      code === 4404
        ? "This room doesn't exist (any more). Go back to the lobby to open another one."
        : "You're not allowed in this room. Go back to the lobby to open another one.";
    dispatch({ type: "socket.fatal", code, message });
  },
});

/** The only place state changes: run the reducer, send what it asks for, re-render. */
function dispatch(action) {
  const result = reduce(state, { ...action, at: Date.now() });
  state = result.state;
  for (const frame of result.outbox) {
    // The reducer only emits frames while the socket is up; if it dropped meanwhile, the
    // pending message stays pending and is re-sent after the next snapshot.
    socket.send(frame);
  }
  view.schedule(state);
  if (window.__roomchatDebug) window.__roomchatState = state;
}

// ---- once a second: the quiet-reply watchdog and the countdowns ------------------------------

setInterval(() => {
  const now = Date.now();
  if (state.generation && state.synced && now - lastReplyFrameAt > QUIET_REPLY_MS) {
    lastReplyFrameAt = now; // ask again only after another quiet period
    dispatch({ type: "local.sync" });
  }
  view.tick();
}, 1000);

// ---- composer --------------------------------------------------------------------------------

const form = document.getElementById("composer");
const textarea = document.getElementById("composer-text");

function newClientMsgId() {
  if (window.crypto?.randomUUID) return window.crypto.randomUUID();
  // crypto.randomUUID needs a secure context; plain http on a LAN address has none.
  const b = window.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function autosize() {
  textarea.style.height = "auto";
  textarea.style.height = `${Math.min(textarea.scrollHeight, 240)}px`;
}

function submit() {
  const text = textarea.value;
  if (!text.trim() || state.fatal) return;
  dispatch({ type: "local.send", text, client_msg_id: newClientMsgId() });
  textarea.value = "";
  autosize();
  // Sending is a clear sign the reader wants to see the conversation's end.
  view.scroller.toBottom();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
  textarea.focus();
});

textarea.addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter makes a new line; never send in the middle of an IME composition.
  if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey && !event.isComposing) {
    event.preventDefault();
    submit();
  }
});
textarea.addEventListener("input", autosize);

document.getElementById("stop-button").addEventListener("click", () => dispatch({ type: "local.stop" }));
document.getElementById("error-dismiss").addEventListener("click", () => dispatch({ type: "local.dismissError" }));
document.getElementById("load-older").addEventListener("click", loadOlder);

// ---- older messages --------------------------------------------------------------------------

async function loadOlder() {
  if (state.loadingOlder || !state.hasMore || !state.messages.length) return;
  dispatch({ type: "history.loading" });
  const url = `${data.messages_url}?before=${encodeURIComponent(state.messages[0].id)}&limit=${PAGE_SIZE}`;
  try {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401) {
      window.location.assign(loginUrl());
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    dispatch({ type: "history.loaded", messages: body.messages || [], has_more: !!body.has_more });
  } catch (err) {
    console.error("older messages:", err);
    dispatch({ type: "history.failed" });
  }
}

// ---- room settings (owner only) ---------------------------------------------------------------

const dialog = document.getElementById("settings-dialog");
const settingsForm = document.getElementById("settings-form");

document.getElementById("settings-button").addEventListener("click", () => {
  const room = state.room;
  if (!room) return;
  settingsForm.elements.title.value = room.title || "";
  settingsForm.elements.system_prompt.value = room.system_prompt || "";
  const select = settingsForm.elements.model;
  const models = Array.isArray(room.models) ? room.models : [];
  const field = document.getElementById("settings-model-field");
  field.hidden = models.length === 0;
  select.replaceChildren(
    ...models.map((name) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      option.selected = name === room.model;
      return option;
    }),
  );
  dialog.showModal();
});

document.getElementById("settings-cancel").addEventListener("click", () => dialog.close());

settingsForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = state.room;
  if (!room) return;
  const changes = {};
  const title = settingsForm.elements.title.value.trim();
  const prompt = settingsForm.elements.system_prompt.value;
  const model = settingsForm.elements.model.value;
  if (title && title !== room.title) changes.title = title;
  if (prompt !== (room.system_prompt || "")) changes.system_prompt = prompt;
  if (room.models?.length && model && model !== room.model) changes.model = model;
  if (Object.keys(changes).length) dispatch({ type: "local.updateRoom", changes });
  dialog.close();
});

// ---- group conversation: mentions, typing, reactions, regenerate, room list (groupui.js) --------

const group = setupGroup({
  getState: () => state,
  dispatch,
  socket,
  slug: data.slug,
  rerender: () => view.schedule(state),
});

// ---- members, privacy, invites and the read-only system prompt (access.js) ----------------------

const access = setupAccess({ getState: () => state, socket, invitesUrl: data.invites_url });

// ---- go ---------------------------------------------------------------------------------------

view.schedule(state);
socket.start();
