// The room's state as a pure reducer: reduce(state, action) -> { state, outbox }.
//
// No DOM, no timers, no sockets here. Everything that happens to a room page (a server frame,
// the socket opening or closing, the user sending a message, a history page arriving) is an
// action; the reducer returns a new state object (unchanged parts keep their identity, which
// lets the renderer skip them) and the frames that must be sent because of it (`outbox`).
// Keeping this pure is what makes the protocol's subtle parts (seq gaps, snapshot replacement,
// pending reconciliation) easy to reason about and to test without a browser.
//
// Time is never read here: the dispatcher stamps each action with `at` (ms since epoch).

import { groupStep, groupAfter } from "roomchat/group";

/** The server's snapshot and history pages hold at most this many messages. */
export const PAGE_SIZE = 50;

/** Error codes that refuse a `message.send`: the pending message they refer to was not stored. */
const SEND_REFUSALS = new Set(["empty", "too_long", "rate_limited", "budget_exceeded"]);

export function initialState({ username = null, slug = null, room = null } = {}) {
  return {
    me: username,
    slug,
    connection: "connecting", // connecting | online | offline
    connId: 0, // increases each time a socket opens; tells "sent on this socket" apart
    synced: false, // a snapshot arrived on the current socket, so sends are safe
    awaitingSync: 0, // when (ms) a `sync` went out unanswered: don't ask again for every gap
    retryAt: null, // when offline: when the next connection attempt starts (ms)
    fatal: null, // {code, message} after 4403/4404: the page stops reconnecting
    room, // the page may embed the Room so the header is right before the socket opens
    messages: [], // stored Messages, ascending id
    pending: [], // {client_msg_id, text, created_at, sentOn, error}: typed, not yet stored
    generation: null, // {message_id, seq, text, model, retry}: the running reply
    presence: [],
    error: null, // {code, message, retry_after, at}: the last `error` frame for this tab
    hasMore: false, // older messages exist before messages[0]
    loadingOlder: false,
    typing: {}, // username -> when (ms) we last heard they are typing (group.js)
    typingSentAt: 0, // when this tab last sent `typing`
    roomEvents: [], // {id, kind, value, actor, created_at}: the room's settings changes (group.js)
  };
}

// ---- helpers ---------------------------------------------------------------------------------

const byId = (a, b) => a.id - b.id;

function indexOfId(messages, id) {
  // Replies and new messages land at the end, so search backwards.
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i].id === id) return i;
  return -1;
}

/** Insert or replace `message` by id, keeping ascending order. */
function upsert(messages, message) {
  const i = indexOfId(messages, message.id);
  if (i >= 0) {
    const next = messages.slice();
    next[i] = { ...messages[i], ...message };
    return next;
  }
  const next = messages.concat([message]);
  if (messages.length && messages[messages.length - 1].id > message.id) next.sort(byId);
  return next;
}

/** Shallow-update the message with `id`; no-op if it is not there. */
function patch(messages, id, changes) {
  const i = indexOfId(messages, id);
  if (i < 0) return messages;
  const next = messages.slice();
  next[i] = { ...messages[i], ...changes };
  return next;
}

function placeholderReply(id, model, at) {
  return {
    id,
    role: "assistant",
    author: null,
    model: model ?? null,
    text: "",
    status: "streaming",
    created_at: new Date(at ?? 0).toISOString(),
    client_msg_id: null,
  };
}

/** A `sync` unanswered for this long no longer holds back the next one (it may have been lost). */
const SYNC_PATIENCE_MS = 5000;

/** Ask the server for a fresh snapshot, unless one is already on its way. */
function requestSync(state, outbox, at) {
  if (!state.synced) return state; // the snapshot that ends connecting will do it
  if (state.awaitingSync && at - state.awaitingSync < SYNC_PATIENCE_MS) return state;
  outbox.push({ type: "sync" });
  return { ...state, awaitingSync: at || 1 };
}

/** Send pending messages that are neither stored nor already on the wire of this socket. */
function flushPending(state, outbox) {
  if (!state.synced || state.connection !== "online") return state;
  let changed = false;
  const pending = state.pending.map((p) => {
    if (p.error || p.sentOn === state.connId) return p;
    changed = true;
    outbox.push({ type: "message.send", text: p.text, client_msg_id: p.client_msg_id });
    return { ...p, sentOn: state.connId };
  });
  return changed ? { ...state, pending } : state;
}

// ---- frames ----------------------------------------------------------------------------------

function onSnapshot(state, f, outbox) {
  const snap = (f.messages || []).slice().sort(byId);
  // The snapshot replaces what we show. Older pages the reader already loaded are kept only if
  // they join up with it (its oldest message is one we have), so the list never has a hole.
  let messages = snap;
  let hasMore = snap.length >= PAGE_SIZE;
  if (snap.length && state.messages.length && indexOfId(state.messages, snap[0].id) >= 0) {
    messages = state.messages.filter((m) => m.id < snap[0].id).concat(snap);
    hasMore = state.hasMore;
  }

  // A running reply: the snapshot's text and seq replace whatever we had shown.
  let generation = null;
  const g = f.generation;
  if (g) {
    const known = state.generation && state.generation.message_id === g.message_id ? state.generation : null;
    const stored = messages[indexOfId(messages, g.message_id)];
    generation = {
      message_id: g.message_id,
      seq: g.seq,
      text: g.text,
      model: stored?.model ?? known?.model ?? f.room?.model ?? null,
      retry: g.seq === 0 ? known?.retry ?? null : null,
    };
    messages = stored
      ? patch(messages, g.message_id, { text: g.text, status: "streaming" })
      : upsert(messages, { ...placeholderReply(g.message_id, generation.model, f.at), text: g.text });
  }

  // Pending messages the snapshot shows stored are done: never send them again.
  const stored = new Set();
  for (const m of messages) if (m.role === "user" && m.author === state.me && m.client_msg_id) stored.add(m.client_msg_id);
  const pending = state.pending.filter((p) => !stored.has(p.client_msg_id));

  const next = {
    ...state,
    connection: "online",
    synced: true,
    awaitingSync: 0,
    retryAt: null,
    room: f.room ?? state.room,
    me: f.user?.username ?? state.me,
    messages,
    hasMore,
    generation,
    pending,
  };
  // Whatever is still pending (typed offline, or lost with the old socket) goes out now; the
  // server ignores a client_msg_id it already stored, so a resend can never duplicate.
  return flushPending(next, outbox);
}

function onMessageCreated(state, f) {
  const m = f.message;
  if (!m || typeof m.id !== "number") return state;
  const mine = m.author === state.me && m.client_msg_id;
  return {
    ...state,
    messages: upsert(state.messages, m),
    pending: mine ? state.pending.filter((p) => p.client_msg_id !== m.client_msg_id) : state.pending,
  };
}

function onStarted(state, f, outbox) {
  const id = f.message_id;
  let next = state;
  if (state.generation && state.generation.message_id !== id) {
    // We never saw the previous reply finish: a frame was lost. Heal it.
    next = requestSync(next, outbox, f.at);
  }
  const i = indexOfId(next.messages, id);
  const messages =
    i >= 0
      ? patch(next.messages, id, { status: "streaming", model: f.model ?? next.messages[i].model })
      : upsert(next.messages, placeholderReply(id, f.model, f.at));
  const generation =
    next.generation && next.generation.message_id === id
      ? { ...next.generation, model: f.model ?? next.generation.model }
      : { message_id: id, seq: 0, text: "", model: f.model ?? null, retry: null };
  return { ...next, messages, generation };
}

function onRetrying(state, f, outbox) {
  let next = state;
  if (!state.generation || state.generation.message_id !== f.message_id) {
    next = onStarted(state, { message_id: f.message_id, model: f.model, at: f.at }, outbox);
  }
  const retry = {
    attempt: f.attempt,
    retry_in: f.retry_in,
    reason: f.reason,
    model: f.model ?? null,
    at: f.at,
  };
  return { ...next, generation: { ...next.generation, retry, model: f.model ?? next.generation.model } };
}

function onDelta(state, f, outbox) {
  const g = state.generation;
  if (!g || g.message_id !== f.message_id) {
    const i = indexOfId(state.messages, f.message_id);
    // A late delta of a reply that already finished: nothing to do.
    if (i >= 0 && state.messages[i].status !== "streaming") return state;
    // A reply we never saw start: ask for the whole picture.
    return requestSync(state, outbox, f.at);
  }
  if (f.seq <= g.seq) return state; // already included (snapshot or duplicate)
  if (f.seq !== g.seq + 1) return requestSync(state, outbox, f.at); // a gap: a frame was lost
  const text = g.text + f.text;
  return {
    ...state,
    generation: { ...g, seq: f.seq, text, retry: null },
    messages: patch(state.messages, g.message_id, { text }),
  };
}

function onFinished(state, f) {
  const changes = {
    text: f.text ?? "",
    status: f.status,
    stop_reason: f.stop_reason ?? null,
    usage: f.usage ?? null,
    error: f.error ?? null,
  };
  const i = indexOfId(state.messages, f.message_id);
  const messages =
    i >= 0
      ? patch(state.messages, f.message_id, changes)
      : upsert(state.messages, { ...placeholderReply(f.message_id, state.generation?.model, f.at), ...changes });
  const generation = state.generation && state.generation.message_id === f.message_id ? null : state.generation;
  return { ...state, messages, generation };
}

function onError(state, f) {
  const error = {
    code: f.code ?? "error",
    message: f.message ?? "",
    retry_after: typeof f.retry_after === "number" ? f.retry_after : null,
    at: f.at,
  };
  let pending = state.pending;
  if (SEND_REFUSALS.has(error.code)) {
    // The refused frame was (almost always) the newest message this socket sent: mark it so
    // the author can retry or discard it, instead of it staying "sending" forever.
    for (let i = pending.length - 1; i >= 0; i--) {
      const p = pending[i];
      if (!p.error && p.sentOn === state.connId) {
        pending = pending.slice();
        pending[i] = { ...p, error };
        break;
      }
    }
  }
  return { ...state, error, pending };
}

// ---- the reducer -----------------------------------------------------------------------------

/**
 * Apply one action. Server frames are passed as they arrive (their `type` is the protocol's);
 * local actions have types starting with `socket.`, `local.` or `history.`.
 */
export function reduce(state, action) {
  const outbox = [];
  const next = groupAfter(state, step(state, action, outbox), action);
  return { state: next, outbox };
}

function step(state, a, outbox) {
  switch (a.type) {
    // -- the connection --
    case "socket.connecting":
      return { ...state, connection: "connecting", retryAt: null };
    case "socket.open":
      // Not "online" yet: the server may still close with 4401/4403/4404. The snapshot, always
      // the first frame, is what proves the room is ours to use.
      return { ...state, connection: "connecting", connId: state.connId + 1, synced: false, awaitingSync: 0 };
    case "socket.closed":
      return { ...state, connection: "offline", synced: false, awaitingSync: 0, retryAt: a.retryAt ?? null };
    case "socket.fatal":
      return {
        ...state,
        connection: "offline",
        synced: false,
        retryAt: null,
        fatal: { code: a.code, message: a.message },
        generation: null,
      };

    // -- server frames --
    case "room.snapshot":
      return onSnapshot(state, a, outbox);
    case "presence":
      return { ...state, presence: Array.isArray(a.users) ? a.users.slice() : [] };
    case "message.created":
      return onMessageCreated(state, a);
    case "generation.started":
      return onStarted(state, a, outbox);
    case "generation.retrying":
      return onRetrying(state, a, outbox);
    case "generation.delta":
      return onDelta(state, a, outbox);
    case "generation.finished":
      return onFinished(state, a);
    case "room.updated":
      return a.room ? { ...state, room: a.room } : state;
    case "error":
      return onError(state, a);

    // -- the user --
    case "local.send": {
      const p = { client_msg_id: a.client_msg_id, text: a.text, created_at: new Date(a.at).toISOString(), sentOn: null, error: null };
      // A new attempt makes the last refusal old news.
      return flushPending({ ...state, error: null, pending: state.pending.concat([p]) }, outbox);
    }
    case "local.retry": {
      const pending = state.pending.map((p) => (p.client_msg_id === a.client_msg_id ? { ...p, error: null, sentOn: null } : p));
      return flushPending({ ...state, pending }, outbox);
    }
    case "local.discard":
      return { ...state, pending: state.pending.filter((p) => p.client_msg_id !== a.client_msg_id) };
    case "local.dismissError":
      return { ...state, error: null };
    case "local.stop":
      if (!state.generation || !state.synced) return state;
      outbox.push({ type: "generation.stop", message_id: state.generation.message_id });
      return state;
    case "local.updateRoom":
      if (!state.synced) return state;
      outbox.push({ type: "room.update", ...a.changes });
      return state;
    case "local.sync":
      // The watchdog's ask (a reply went quiet): always sent, it is what unsticks a lost sync.
      if (!state.synced) return state;
      outbox.push({ type: "sync" });
      return { ...state, awaitingSync: a.at || 1 };

    // -- older pages from the history API --
    case "history.loading":
      return { ...state, loadingOlder: true };
    case "history.failed":
      return { ...state, loadingOlder: false };
    case "history.loaded": {
      const oldest = state.messages.length ? state.messages[0].id : Infinity;
      // Only what is older than what we show: newer copies (from frames) are fresher.
      const older = (a.messages || []).filter((m) => m.id < oldest).sort(byId);
      return { ...state, loadingOlder: false, hasMore: !!a.has_more, messages: older.concat(state.messages) };
    }
    default:
      // Group conversation frames and actions (group.js); unknown ones are ignored, so the
      // server may add new ones.
      return groupStep(state, a, outbox) ?? state;
  }
}
