// The room list beside the conversation: your rooms (GET /api/rooms) with unread counts, and
// the unread count in the tab title.
//
// Read state lives in this browser (localStorage, unread.js): the room on screen is read up to
// its newest message whenever the tab is visible; other rooms count the messages by others
// newer than what you last saw there. The list refreshes every 20 s and when the tab returns.

import { countUnread, unreadLabel, unseenInRoom, loadSeen, markSeen } from "roomchat/unread";

const REFRESH_MS = 20000;

export class RoomList {
  /**
   * @param {HTMLElement} list  the <ul> to fill
   * @param {string} slug       the room on screen
   * @param {string} url        the endpoint
   */
  constructor(list, slug, url = "/api/rooms") {
    this.list = list;
    this.slug = slug;
    this.url = url;
    this.rooms = [];
    this.limit = 20;
    this.seen = loadSeen();
    this.state = null;
    this.othersUnread = 0;
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.refresh();
    });
    window.addEventListener("storage", () => {
      this.seen = loadSeen(); // another tab read something
      this.draw();
    });
  }

  start() {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  async refresh() {
    try {
      const response = await fetch(this.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return this.draw();
      const body = await response.json();
      this.rooms = Array.isArray(body.rooms) ? body.rooms : [];
      this.limit = body.limit || this.limit;
    } catch (err) {
      console.warn("room list:", err);
      return this.draw(); // at least the room on screen
    }
    // A room this browser has never shown starts read, from its newest message.
    for (const room of this.rooms) {
      if (this.seen[room.slug] === undefined && room.slug !== this.slug) {
        this.seen = markSeen(room.slug, room.newest_id ?? 0);
      }
    }
    this.draw();
  }

  /** The title's count: this room's unseen messages while hidden, plus the other rooms'. */
  unreadFor(state) {
    this.state = state;
    const newest = lastStoredId(state.messages);
    const visible = document.visibilityState === "visible";
    if (visible && state.synced && newest !== null && (this.seen[this.slug] ?? -1) < newest) {
      this.seen = markSeen(this.slug, newest);
    }
    if (!this.drawn) this.draw(); // the list shows this room even before the endpoint answers
    const here = visible ? 0 : unseenInRoom(state.messages, this.seen[this.slug], state.me);
    return here + this.othersUnread;
  }

  draw() {
    let others = 0;
    const rooms = this.rooms.slice();
    if (!rooms.some((r) => r.slug === this.slug) && this.state?.room) {
      rooms.unshift({ slug: this.slug, title: this.state.room.title || this.slug, recent_ids: [] });
    }
    const key = [];
    const items = rooms.map((room) => {
      const current = room.slug === this.slug;
      const unread = current ? { count: 0, more: false } : countUnread(room.recent_ids || [], this.seen[room.slug], this.limit);
      if (!current) others += unread.count;
      key.push(room.slug, room.title, unread.count, unread.more, room.private);
      return { room, current, unread };
    });
    this.othersUnread = others;
    this.drawn = items.length > 0;
    const joined = JSON.stringify(key);
    if (this.list.dataset.key === joined) return;
    this.list.dataset.key = joined;
    this.list.replaceChildren(...items.map(({ room, current, unread }) => this.item(room, current, unread)));
    const section = this.list.closest("[data-room-list]");
    if (section) section.hidden = items.length === 0;
  }

  item(room, current, unread) {
    const li = document.createElement("li");
    li.dataset.slug = room.slug;
    const a = document.createElement("a");
    a.className = current ? "room-nav-link is-current" : "room-nav-link";
    a.href = `/rooms/${encodeURIComponent(room.slug)}/`;
    if (current) a.setAttribute("aria-current", "page");
    const title = document.createElement("span");
    title.className = "room-nav-title";
    title.textContent = room.title || room.slug;
    a.append(title);
    if (room.private) {
      const lock = document.createElement("span");
      lock.className = "room-nav-private";
      lock.textContent = "private";
      a.append(lock);
    }
    const label = unreadLabel(unread);
    if (label) {
      const badge = document.createElement("span");
      badge.className = "unread-badge";
      badge.textContent = label;
      const spoken = document.createElement("span");
      spoken.className = "visually-hidden";
      spoken.textContent = ` unread message${unread.count === 1 && !unread.more ? "" : "s"}`;
      badge.append(spoken);
      a.append(badge);
    }
    li.append(a);
    return li;
  }
}

function lastStoredId(messages) {
  for (let i = messages.length - 1; i >= 0; i--) if (typeof messages[i].id === "number") return messages[i].id;
  return null;
}
