// Mentions, pure: the `@word` being typed at the caret, who it may complete to, what picking
// one does to the text, and where mentions sit in a message's text (for highlighting).
//
// Usernames are Django's: letters, digits and @ . + - _. A mention is `@` at the start or
// after a character that cannot be part of a name, then the name (SPEC §7: `@claude`, any
// case, as a word).

export const CLAUDE = "Claude";

const NAME_CHAR = /[\p{L}\p{N}_.+-]/u;
const MENTION = /(^|[^\p{L}\p{N}_.+@-])@([\p{L}\p{N}_.+-]+)/gu;

/** The mention being typed at `caret`: {start (index of "@"), query} or null. */
export function mentionQuery(text, caret) {
  let i = caret;
  while (i > 0 && NAME_CHAR.test(text[i - 1])) i--;
  if (i === 0 || text[i - 1] !== "@") return null;
  const at = i - 1;
  if (at > 0 && (NAME_CHAR.test(text[at - 1]) || text[at - 1] === "@")) return null; // an e-mail address
  return { start: at, query: text.slice(i, caret) };
}

const byName = (a, b) => a.localeCompare(b, undefined, { sensitivity: "base" }) || (a < b ? -1 : 1);

/** Claude first, then the people (sorted, without `me`), filtered by prefix (any case). */
export function mentionCandidates(query, people, me = null, limit = 8) {
  const q = (query || "").toLowerCase();
  const names = [CLAUDE, ...[...new Set(people)].filter((n) => n && n !== me && n.toLowerCase() !== "claude").sort(byName)];
  const starts = names.filter((n) => n.toLowerCase().startsWith(q));
  const contains = names.filter((n) => !n.toLowerCase().startsWith(q) && n.toLowerCase().includes(q));
  return starts.concat(contains).slice(0, limit);
}

/** Replace the typed `@query` (from `start` to `caret`) with `@name `; the new text and caret. */
export function applyMention(text, start, caret, name) {
  const rest = text.slice(caret).replace(/^[\p{L}\p{N}_.+-]*/u, "");
  const insert = `@${name}${rest.startsWith(" ") ? "" : " "}`;
  const next = text.slice(0, start) + insert + rest;
  return { text: next, caret: start + insert.length + (rest.startsWith(" ") ? 1 : 0) };
}

/** Every mention in `text` of a known name (Claude always known): [{index, length, name}]. */
export function findMentions(text, known) {
  const names = new Map([["claude", CLAUDE]]);
  for (const n of known || []) if (n) names.set(n.toLowerCase(), n);
  const found = [];
  for (const match of String(text || "").matchAll(MENTION)) {
    let word = match[2];
    // A trailing full stop or hyphen ends the sentence, not the name ("thanks @bob.").
    while (word && !names.has(word.toLowerCase()) && /[.+-]$/.test(word)) word = word.slice(0, -1);
    const name = names.get(word.toLowerCase());
    if (name) found.push({ index: match.index + match[1].length, length: word.length + 1, name });
  }
  return found;
}

/** Does `text` mention `username` (for notifications)? */
export function mentions(text, username) {
  return !!username && findMentions(text, [username]).some((m) => m.name === username);
}

/**
 * Wrap mentions of known names inside `root` (a sanitized fragment or element) in
 * <span class="mention">, leaving code and links alone.
 */
export function highlightMentions(root, known, me = null) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) =>
      node.parentElement?.closest("code, pre, a, .mention") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
  });
  const nodes = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) if (n.nodeValue.includes("@")) nodes.push(n);
  for (const node of nodes) {
    const found = findMentions(node.nodeValue, known);
    if (!found.length) continue;
    const text = node.nodeValue;
    const parts = [];
    let pos = 0;
    for (const m of found) {
      if (m.index > pos) parts.push(document.createTextNode(text.slice(pos, m.index)));
      const span = document.createElement("span");
      span.className = m.name === me ? "mention is-me" : m.name === CLAUDE ? "mention is-claude" : "mention";
      span.textContent = text.slice(m.index, m.index + m.length);
      parts.push(span);
      pos = m.index + m.length;
    }
    if (pos < text.length) parts.push(document.createTextNode(text.slice(pos)));
    node.replaceWith(...parts);
  }
}
