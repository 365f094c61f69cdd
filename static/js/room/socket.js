// One websocket to the room, reopened for as long as the page lives.
//
// Why a class of its own: reconnecting well is fiddly (backoff, jitter, timeouts, the close
// codes that must *not* be retried) and none of it concerns rendering or the protocol's
// frames. This module only knows "JSON objects in, JSON objects out" and reports its lifecycle
// through callbacks.

/** Close codes the server uses after accepting (SPEC §6). */
export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_FORBIDDEN = 4403;
export const CLOSE_NOT_FOUND = 4404;

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
// A handshake that neither opens nor fails this long is abandoned and retried: a half-dead
// network can otherwise leave a socket "connecting" for minutes.
const CONNECT_TIMEOUT_MS = 10000;

/**
 * Delay before reconnect attempt number `attempt` (0-based): 0.5 s doubling to 15 s, with
 * "equal jitter" (half fixed, half random) so that every tab of a restarted server does not
 * knock on the door in the same millisecond, yet none waits much less than the schedule says.
 */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export function socketUrl(path, loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}${path}`;
}

export class RoomSocket {
  /**
   * @param {string} url   ws:// or wss:// URL
   * @param {object} on    callbacks: connecting(), open(), frame(obj), closed({code, retryAt}),
   *                       fatal({code}) for 4401/4403/4404 (no reconnect after those)
   */
  constructor(url, on) {
    this.url = url;
    this.on = on;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.connectTimer = null;
    this.stopped = false;
    this.heardFromServer = false;

    // Coming back online or to the tab is a good moment to try at once instead of waiting.
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  /** Stop for good (after a fatal close code, or when the page goes away). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.connectTimer);
    if (this.ws) this.ws.close(1000);
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send one frame; false if the socket is not open (the caller keeps what must survive). */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** If we are waiting to reconnect, stop waiting. */
  reconnectNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.timer);
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    this.timer = null;
    this.heardFromServer = false;
    this.on.connecting?.();
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      console.error("websocket:", err);
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.connectTimer = setTimeout(() => {
      if (ws.readyState === WebSocket.CONNECTING) ws.close();
    }, CONNECT_TIMEOUT_MS);

    ws.addEventListener("open", () => {
      clearTimeout(this.connectTimer);
      this.on.open?.();
    });
    ws.addEventListener("message", (event) => {
      if (ws !== this.ws) return;
      // Only a frame proves the server accepted us (it closes right after accepting when we
      // may not stay), so the backoff resets here rather than on "open".
      if (!this.heardFromServer) {
        this.heardFromServer = true;
        this.attempt = 0;
      }
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        console.warn("ignoring a frame that is not JSON");
        return;
      }
      if (frame && typeof frame === "object" && typeof frame.type === "string") this.on.frame?.(frame);
    });
    ws.addEventListener("close", (event) => {
      clearTimeout(this.connectTimer);
      if (ws !== this.ws) return;
      this.ws = null;
      if (this.stopped) return;
      const code = event.code;
      if (code === CLOSE_UNAUTHORIZED || code === CLOSE_FORBIDDEN || code === CLOSE_NOT_FOUND) {
        this.stopped = true;
        this.on.fatal?.({ code });
        return;
      }
      this.scheduleReconnect();
    });
    // "error" is always followed by "close", which does the work.
  }

  scheduleReconnect() {
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    const retryAt = Date.now() + delay;
    this.on.closed?.({ retryAt });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
