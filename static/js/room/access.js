// The "Members & access" card of the room page (issue 11): whether the room is public or
// private, its members, invite links and, for everyone but the owner, the system prompt
// read-only. The owner switches privacy, adds and removes members (`room.update`,
// `member.add` / `member.remove`), creates invite links (`invite.create`) and revokes them
// (POST /api/rooms/<slug>/invites/<id>/revoke). room.js calls setupAccess once and hands it
// every frame; everything here is built with DOM calls (no markup strings, no inline styles).

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function csrfToken() {
  return document.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
}

function shortDate(iso) {
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? iso : when.toLocaleDateString(undefined, { dateStyle: "medium" });
}

/**
 * @param {object} o  getState(), socket (RoomSocket), invitesUrl (the owner's invite list)
 * @returns {{ onFrame(frame, state): void }}
 */
export function setupAccess({ getState, socket, invitesUrl }) {
  const card = $("access-card");
  if (!card) return { onFrame() {} };
  const status = $("access-status");
  const privacy = $("access-private");
  const members = $("access-members");
  const addForm = $("access-add-form");
  const inviteButton = $("access-invite");
  const inviteOut = $("access-invite-url");
  const invites = $("access-invites");
  const prompt = $("access-prompt");
  let lastRoomKey = "";

  const say = (text) => {
    status.textContent = text;
  };

  privacy.addEventListener("change", () => {
    socket.send({ type: "room.update", private: privacy.checked });
  });

  addForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const username = addForm.elements.username.value.trim();
    if (!username) return;
    if (socket.send({ type: "member.add", username })) addForm.reset();
  });

  inviteButton.addEventListener("click", () => {
    if (!socket.send({ type: "invite.create" })) say("Offline: try again once reconnected.");
  });

  async function loadInvites() {
    const room = getState().room;
    if (!room || room.owner !== getState().me || !invitesUrl) return;
    try {
      const response = await fetch(invitesUrl, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      renderInvites(body.invites || []);
    } catch (err) {
      console.error("invites:", err);
    }
  }

  async function revoke(invite) {
    const response = await fetch(`${invitesUrl}/${invite.id}/revoke`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken() },
    });
    say(response.ok ? "Invite link revoked." : "That invite could not be revoked.");
    await loadInvites();
  }

  function renderInvites(list) {
    invites.replaceChildren(
      ...list.map((invite) =>
        el(
          "li",
          { className: "access-invite", dataset: { inviteId: String(invite.id) } },
          el("span", { className: "small", textContent: `Expires ${shortDate(invite.expires_at)}` }),
          el("button", {
            type: "button",
            className: "btn btn-ghost btn-sm access-revoke",
            textContent: "Revoke",
            ariaLabel: `Revoke the invite link that expires ${shortDate(invite.expires_at)}`,
            onclick: () => revoke(invite),
          }),
        ),
      ),
    );
    $("access-invites-title").hidden = list.length === 0;
  }

  function render(state) {
    const room = state.room;
    if (!room) return;
    const owner = room.owner === state.me;
    const canInvite = owner || !room.private;
    card.hidden = false;
    card.dataset.private = room.private ? "1" : "0";
    $("access-mode").textContent = room.private
      ? "Private: only its members can enter."
      : "Public: anyone signed in can enter.";
    $("access-owner-tools").hidden = !owner;
    privacy.checked = !!room.private;
    addForm.hidden = !owner || !room.private;
    inviteButton.hidden = !canInvite;
    $("access-members-title").hidden = !room.private;
    members.replaceChildren(
      ...(room.private ? room.members : []).map((name) =>
        el(
          "li",
          { className: "access-member", dataset: { username: name } },
          el("span", { textContent: name === room.owner ? `${name} (owner)` : name }),
          owner && name !== room.owner
            ? el("button", {
                type: "button",
                className: "btn btn-ghost btn-sm access-remove",
                textContent: "Remove",
                ariaLabel: `Remove ${name} from the room`,
                onclick: () => socket.send({ type: "member.remove", username: name }),
              })
            : null,
        ),
      ),
    );
    // Non-owners read the system prompt here; the owner edits it in the settings dialog.
    $("access-prompt-box").hidden = owner || !room.system_prompt;
    prompt.textContent = room.system_prompt || "";
    const key = `${room.private}|${owner}`;
    if (key !== lastRoomKey) {
      lastRoomKey = key;
      if (owner) loadInvites();
    }
  }

  return {
    onFrame(frame, state) {
      if (frame.type === "room.snapshot" || frame.type === "room.updated") render(state);
      if (frame.type === "invite.created") {
        inviteOut.value = frame.url;
        inviteOut.hidden = false;
        inviteOut.select();
        const copied = navigator.clipboard?.writeText(frame.url);
        Promise.resolve(copied)
          .then(() => say(`Invite link copied: valid until ${shortDate(frame.expires_at)}.`))
          .catch(() => say("Invite link ready: copy it from the box."));
        loadInvites();
      }
      if (frame.type === "error" && ["unknown_user", "forbidden"].includes(frame.code)) {
        say(frame.message);
      }
    },
  };
}
