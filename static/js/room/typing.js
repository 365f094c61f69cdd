// Typing indicators (SPEC §7), pure: when a tab may send `typing`, and who is shown typing.
//
// A tab sends at most one `typing` per TYPING_SEND_MS while its person types; other tabs show
// the typist for TYPING_SHOW_MS after the last one they heard, and drop them at once when that
// person's message arrives (the reducer deletes the entry).

export const TYPING_SEND_MS = 2000;
export const TYPING_SHOW_MS = 5000;

/** May a `typing` frame go out at `now`, the last one having gone at `lastSentAt` (ms)? */
export function shouldSendTyping(lastSentAt, now) {
  return !lastSentAt || now - lastSentAt >= TYPING_SEND_MS;
}

/** Who is typing at `now`: sorted names, never `me`. `typing` maps username -> ms heard. */
export function typingNames(typing, now, me = null) {
  return Object.entries(typing || {})
    .filter(([name, at]) => name !== me && now - at < TYPING_SHOW_MS)
    .map(([name]) => name)
    .sort();
}

/** "bob is typing…", "alice and bob are typing…", "alice, bob and carol are typing…". */
export function typingText(names) {
  if (!names.length) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length > 3) return `${names.slice(0, 2).join(", ")} and ${names.length - 2} others are typing…`;
  return `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
}

/** The entries still worth keeping (drops the expired ones, so the map does not grow). */
export function pruneTyping(typing, now) {
  const kept = {};
  let changed = false;
  for (const [name, at] of Object.entries(typing || {})) {
    if (now - at < TYPING_SHOW_MS) kept[name] = at;
    else changed = true;
  }
  return changed ? kept : typing;
}
