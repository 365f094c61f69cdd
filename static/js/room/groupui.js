// Wires the group-conversation features into the room page (room.js calls setupGroup once):
// the `@` picker and typing frames in the composer, reactions / regenerate / earlier versions in
// the list, the owner's reply-mode setting, the room list and unread title, notifications,
// "Reconnect now", and where the focus goes (the composer on arrival and after Stop).

import { peopleOf } from "roomchat/group";
import { bindGroupActions, setTitleUnread } from "roomchat/groupview";
import { MentionBox } from "roomchat/mentionbox";
import { Notifier } from "roomchat/notify";
import { RoomList } from "roomchat/roomlist";

const $ = (id) => document.getElementById(id);

/**
 * @param {object} o  getState(), dispatch(action), socket (RoomSocket), slug, rerender()
 * @returns {{ onFrame(frame, state): void }}
 */
export function setupGroup({ getState, dispatch, socket, slug, rerender }) {
  const textarea = $("composer-text");
  const focusComposer = () => {
    if (!textarea.disabled) textarea.focus({ preventScroll: true });
  };

  // The composer: `@` offers Claude and the room's people; typing tells the others.
  new MentionBox(textarea, $("mention-list"), () => peopleOf(getState()), () => getState().me);
  textarea.addEventListener("input", () => {
    if (textarea.value.trim()) dispatch({ type: "local.typing" });
  });

  bindGroupActions($("messages"), {
    react: (messageId, emoji) => dispatch({ type: "local.react", message_id: messageId, emoji }),
    regenerate: (messageId) => dispatch({ type: "local.regenerate", message_id: messageId }),
    focusComposer,
  });

  // Stop hides itself once the reply ends: keep keyboard users in the composer, not on <body>.
  $("stop-button").addEventListener("click", focusComposer);
  $("reconnect-now")?.addEventListener("click", () => socket.reconnectNow());

  // The owner's reply mode, in the settings dialog (sent alongside the other settings).
  const settingsForm = $("settings-form");
  const modeSelect = settingsForm?.elements.reply_mode;
  if (modeSelect) {
    $("settings-button").addEventListener("click", () => {
      modeSelect.value = getState().room?.reply_mode || "always";
    });
    settingsForm.addEventListener("submit", () => {
      const room = getState().room;
      if (room && modeSelect.value && modeSelect.value !== room.reply_mode) {
        dispatch({ type: "local.updateRoom", changes: { reply_mode: modeSelect.value } });
      }
    });
  }

  const rooms = new RoomList($("room-list"), slug);
  setTitleUnread((state) => rooms.unreadFor(state));
  rooms.start();
  document.addEventListener("visibilitychange", rerender);

  const notifier = $("notify-button") ? new Notifier($("notify-button")) : null;

  focusComposer(); // arriving in a room, you are ready to type

  return {
    onFrame(frame, state) {
      notifier?.onFrame(frame, state);
    },
  };
}
