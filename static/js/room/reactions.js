// Reactions on a message (SPEC §6 `reaction.toggle` / `reaction.updated`): the chosen emoji as
// toggle buttons with counts, and a "React" button that opens the eight emoji.
//
// Who reacted is in each button's title (hover) and in its accessible name ("👍 2: alice, bob").
// Clicks are handled by the delegated listener in groupview.js through data-action.

import { EMOJI } from "roomchat/group";

const NAMES = {
  "👍": "thumbs up",
  "👎": "thumbs down",
  "❤️": "heart",
  "😂": "laughing",
  "🎉": "party",
  "🤔": "thinking",
  "👀": "eyes",
  "✅": "check mark",
};

/** The accessible name of a reaction button: "👍 2: alice, bob". */
export function reactionLabel(emoji, users) {
  return `${emoji} ${users.length}: ${users.join(", ")}`;
}

/** Only emoji someone chose, in the SPEC's order (unknown ones last). */
export function orderedReactions(reactions) {
  const entries = Object.entries(reactions || {}).filter(([, users]) => Array.isArray(users) && users.length);
  const rank = (e) => (EMOJI.includes(e) ? EMOJI.indexOf(e) : EMOJI.length);
  return entries.sort((a, b) => rank(a[0]) - rank(b[0]));
}

function button(attrs, text) {
  const b = document.createElement("button");
  b.type = "button";
  for (const [k, v] of Object.entries(attrs)) b.setAttribute(k, v);
  b.textContent = text;
  return b;
}

/** Fill `container` (a .message-reactions element) for message `m` as seen by `me`. */
export function renderReactions(container, m, me, open = false) {
  const key = JSON.stringify([m.reactions || {}, me, open]);
  if (container.dataset.key === key) return;
  container.dataset.key = key;
  const chosen = orderedReactions(m.reactions).map(([emoji, users]) => {
    const mine = users.includes(me);
    return button(
      {
        class: mine ? "reaction is-mine" : "reaction",
        "data-action": "react",
        "data-emoji": emoji,
        "aria-pressed": mine ? "true" : "false",
        "aria-label": reactionLabel(emoji, users),
        title: users.join(", "),
      },
      `${emoji} ${users.length}`,
    );
  });
  const toggle = button(
    {
      class: "reaction-add icon-btn",
      "data-action": "react-menu",
      "aria-expanded": open ? "true" : "false",
      "aria-label": "Add a reaction",
      title: "Add a reaction",
    },
    "☺+",
  );
  const picker = document.createElement("div");
  picker.className = "reaction-picker";
  picker.setAttribute("role", "group");
  picker.setAttribute("aria-label", "Reactions");
  picker.hidden = !open;
  picker.append(
    ...EMOJI.map((emoji) => {
      const users = m.reactions?.[emoji] || [];
      const mine = users.includes(me);
      return button(
        {
          class: "reaction-choice",
          "data-action": "react",
          "data-emoji": emoji,
          "aria-pressed": mine ? "true" : "false",
          "aria-label": `React with ${NAMES[emoji] || emoji}`,
          title: NAMES[emoji] || emoji,
        },
        emoji,
      );
    }),
  );
  // A redraw (someone else reacted) must not drop the focus of a keyboard user to <body>.
  const active = container.contains(document.activeElement) ? document.activeElement : null;
  const kind = (b) => ["reaction-choice", "reaction-add"].find((c) => b.classList.contains(c)) || "reaction";
  const focusKey = active ? [kind(active), active.dataset.emoji] : null;
  container.replaceChildren(...chosen, toggle, picker);
  if (focusKey) {
    const again = [...container.querySelectorAll("button")].find(
      (b) => kind(b) === focusKey[0] && b.dataset.emoji === focusKey[1],
    );
    (again || toggle).focus();
  }
}
