// Unread counts, pure apart from the small localStorage store at the end.
//
// The room list endpoint (GET /api/rooms) gives, per room, its newest message id and the ids of
// its newest messages by other people (and Claude). A room's unread count is how many of those
// are newer than the last message this browser showed you there. A room never seen here starts
// read: its baseline is taken the first time the list shows it.

/** {count, more}: how many of `recentIds` are newer than `lastSeen`; `more` when capped. */
export function countUnread(recentIds, lastSeen, cap = recentIds.length) {
  if (lastSeen === undefined || lastSeen === null) return { count: 0, more: false };
  const count = recentIds.filter((id) => id > lastSeen).length;
  return { count, more: count > 0 && count >= cap };
}

/** "3", or "20+" when the list was capped. */
export function unreadLabel({ count, more }) {
  return count ? `${count}${more ? "+" : ""}` : "";
}

/** The tab title: "(3) Weekend · Roomchat" with unread messages, else "Weekend · Roomchat". */
export function titleWithUnread(title, unread) {
  const base = `${title} · Roomchat`;
  return unread > 0 ? `(${unread}) ${base}` : base;
}

/** Messages of the room (not mine, stored) newer than `lastSeen`: what arrived while away. */
export function unseenInRoom(messages, lastSeen, me) {
  if (lastSeen === undefined || lastSeen === null) return 0;
  let n = 0;
  for (const m of messages) {
    if (m.id > lastSeen && !(m.role === "user" && m.author === me) && !m.superseded) n++;
  }
  return n;
}

// ---- where the last-seen ids live ---------------------------------------------------------------

const KEY = "roomchat.lastSeen";

export function loadSeen(storage = window.localStorage) {
  try {
    const value = JSON.parse(storage.getItem(KEY) || "{}");
    return value && typeof value === "object" ? value : {};
  } catch {
    return {};
  }
}

/** Record that `slug` was read up to `id` (never moves backwards); the new map. */
export function markSeen(slug, id, storage = window.localStorage) {
  const seen = loadSeen(storage);
  if (typeof id !== "number" || (seen[slug] ?? -1) >= id) return seen;
  seen[slug] = id;
  try {
    storage.setItem(KEY, JSON.stringify(seen));
  } catch {
    // Storage full or blocked: unread counts just stay approximate.
  }
  return seen;
}
