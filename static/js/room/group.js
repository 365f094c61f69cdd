// The group-conversation part of the room's state (SPEC §6-§7), pure like state.js, which calls
// in here: reactions, superseded replies, typing, who stopped a reply, the quiet lines that say
// the room's settings changed (from the server's events), and the local actions that send regenerate / react / typing.
//
// groupStep(state, action, outbox) handles the frames and actions state.js does not know and
// returns the new state, or undefined when the action is not ours. groupAfter(prev, next,
// action) adds what these features need to the frames state.js already handles.

import { shouldSendTyping, pruneTyping } from "roomchat/typing";

export const EMOJI = ["👍", "👎", "❤️", "😂", "🎉", "🤔", "👀", "✅"];

export const REPLY_MODES = {
  always: "Claude answers every message",
  mention: "Claude answers when mentioned",
  auto: "Claude joins in when wanted",
};

function patchMessage(messages, id, changes) {
  const i = messages.findIndex((m) => m.id === id);
  if (i < 0) return messages;
  const next = messages.slice();
  next[i] = { ...messages[i], ...changes };
  return next;
}

const ANSWERS = { always: "every message", mention: "only when mentioned", auto: "when it is wanted" };

/**
 * The quiet line for one of the room's settings changes (a server `RoomEvent`, SPEC §6:
 * `room.snapshot.events`, `room.updated.events`): {id, kind, value, actor, created_at}.
 */
export function eventLine(e) {
  const who = e.actor || "Someone";
  switch (e.kind) {
    case "model":
      return `${who} switched the model to ${e.value}`;
    case "system_prompt":
      return e.value === "cleared" ? `${who} cleared Claude's instructions` : `${who} changed Claude's instructions`;
    case "reply_mode":
      return `${who} set Claude to answer ${ANSWERS[e.value] || e.value}`;
    case "private":
      return `${who} made the room ${e.value === "private" ? "private" : "public"}`;
    case "title":
      return `${who} renamed the room to “${e.value}”`;
    default:
      return null; // a kind this page does not know: say nothing
  }
}

/** The events we know plus new ones, by id, each once (a snapshot repeats what we had). */
export function mergeEvents(known, incoming) {
  if (!Array.isArray(incoming) || !incoming.length) return known;
  const byEventId = new Map((known || []).map((e) => [e.id, e]));
  for (const e of incoming) if (e && typeof e.id === "number" && eventLine(e)) byEventId.set(e.id, e);
  return [...byEventId.values()].sort((x, y) => x.id - y.id);
}

/**
 * The user messages a reply answers: its own `in_reply_to` when the server gave one, else (a
 * reply still streaming, whose frames carry none) the user messages since the reply before it,
 * or for a regenerated reply the same ones as the version it replaced.
 */
export function answeredIds(messages, index) {
  const reply = messages[index];
  if (reply?.in_reply_to?.length) return reply.in_reply_to;
  const ids = [];
  for (let i = index - 1; i >= 0; i--) {
    const m = messages[i];
    if (m.role === "assistant") {
      if (m.superseded && !ids.length) return m.in_reply_to || [];
      if (!m.superseded) break;
      continue;
    }
    ids.unshift(m.id);
  }
  return ids;
}

/** The room's newest reply (the one regenerate applies to), or null. */
export function newestReply(messages) {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].role === "assistant" && !messages[i].superseded) return messages[i];
  }
  return null;
}

/** Everyone the room knows of: presence, members, the owner and the authors seen; sorted. */
export function peopleOf(state) {
  const names = new Set([...(state.presence || []), ...(state.room?.members || [])]);
  if (state.room?.owner) names.add(state.room.owner);
  for (const m of state.messages || []) if (m.author) names.add(m.author);
  return [...names].sort();
}

export function groupStep(state, a, outbox) {
  switch (a.type) {
    case "reaction.updated":
      return { ...state, messages: patchMessage(state.messages, a.message_id, { reactions: a.reactions || {} }) };
    case "message.superseded":
      return { ...state, messages: patchMessage(state.messages, a.message_id, { superseded: true }) };
    case "typing":
      if (!a.username || a.username === state.me) return state;
      return { ...state, typing: { ...pruneTyping(state.typing, a.at), [a.username]: a.at } };
    case "local.typing":
      if (!state.synced || !shouldSendTyping(state.typingSentAt, a.at)) return state;
      outbox.push({ type: "typing" });
      return { ...state, typingSentAt: a.at };
    case "local.regenerate":
      if (!state.synced || state.generation) return state;
      outbox.push({ type: "generation.regenerate", message_id: a.message_id });
      return state;
    case "local.react":
      if (!state.synced || !EMOJI.includes(a.emoji)) return state;
      outbox.push({ type: "reaction.toggle", message_id: a.message_id, emoji: a.emoji });
      return state;
    default:
      return undefined;
  }
}

export function groupAfter(prev, next, a) {
  switch (a.type) {
    case "message.created": {
      // That person's message arrived: they are no longer typing.
      const author = a.message?.author;
      if (!author || !next.typing?.[author]) return next;
      const typing = { ...next.typing };
      delete typing[author];
      return { ...next, typing };
    }
    case "generation.finished":
      if (a.stopped_by === undefined) return next;
      return { ...next, messages: patchMessage(next.messages, a.message_id, { stopped_by: a.stopped_by }) };
    case "room.snapshot":
    case "room.updated": {
      // The server's record of settings changes: the same lines on every tab, after a reload too.
      const roomEvents = mergeEvents(next.roomEvents || [], a.events);
      return roomEvents === next.roomEvents ? next : { ...next, roomEvents };
    }
    default:
      return next;
  }
}
