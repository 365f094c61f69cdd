// Desktop notifications, only when asked for (a button; the page never asks by itself), and only
// while the tab is hidden: when someone mentions you, and when a reply finishes.

import { mentions } from "roomchat/mentions";

const supported = () => typeof window.Notification === "function";

export class Notifier {
  /** @param {HTMLButtonElement} button  "Turn on notifications" */
  constructor(button) {
    this.button = button;
    button.addEventListener("click", async () => {
      try {
        await window.Notification.requestPermission();
      } catch (err) {
        console.warn("notifications:", err);
      }
      this.draw();
    });
    this.draw();
  }

  draw() {
    // Offered only while the browser may still ask; once granted or refused there is nothing to do.
    this.button.hidden = !supported() || window.Notification.permission !== "default";
  }

  /** Called with every server frame and the state after it. */
  onFrame(frame, state) {
    if (!supported() || window.Notification.permission !== "granted") return;
    if (document.visibilityState !== "hidden") return;
    const room = state.room?.title || state.slug;
    if (frame.type === "message.created") {
      const m = frame.message;
      if (m?.author && m.author !== state.me && mentions(m.text, state.me)) {
        this.show(`${m.author} mentioned you in ${room}`, m.text);
      }
    } else if (frame.type === "generation.finished" && frame.status === "complete") {
      this.show(`Claude replied in ${room}`, frame.text || "");
    }
  }

  show(title, body) {
    try {
      const n = new window.Notification(title, { body: body.slice(0, 160), tag: `roomchat-${title}` });
      n.onclick = () => {
        window.focus();
        n.close();
      };
    } catch (err) {
      console.warn("notifications:", err);
    }
  }
}
