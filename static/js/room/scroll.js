// Keeps the message list pinned to the newest message, unless the reader scrolled up.
//
// The rule people expect from chat apps: while you are at the bottom, new messages and the
// streaming reply keep you at the bottom; once you scroll up to read, nothing moves under
// you and a "Jump to latest" button appears instead. Loading older messages at the top keeps
// what you were looking at in place.

const STICK_SLACK_PX = 48; // "at the bottom" tolerates a little slack (sub-pixel, margins)
const NEAR_TOP_PX = 160; // start fetching older messages a bit before the very top

export class AutoScroller {
  /**
   * @param {HTMLElement} scroller   the element that scrolls
   * @param {HTMLElement} jump       the "Jump to latest" button
   * @param {() => void} onNearTop   called when the reader reaches the top
   */
  constructor(scroller, jump, onNearTop) {
    this.scroller = scroller;
    this.jump = jump;
    this.onNearTop = onNearTop;
    this.stuck = true;
    this.snapshot = null;

    scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    jump.addEventListener("click", () => {
      this.toBottom();
      // Keyboard users would otherwise be left on a button that just vanished.
      document.getElementById("composer-text")?.focus({ preventScroll: true });
    });
  }

  distanceFromBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight;
  }

  onScroll() {
    this.stuck = this.distanceFromBottom() <= STICK_SLACK_PX;
    if (this.stuck) this.jump.hidden = true;
    if (this.scroller.scrollTop <= NEAR_TOP_PX) this.onNearTop();
  }

  toBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.stuck = true;
    this.jump.hidden = true;
  }

  /** Call before changing the list. `anchor` is the element that should stay put if older
   *  messages get prepended (the current first message). */
  before(anchor) {
    this.snapshot = {
      height: this.scroller.scrollHeight,
      top: this.scroller.scrollTop,
      anchor,
      anchorTop: anchor ? anchor.offsetTop : 0,
    };
  }

  /** Call after changing the list. */
  after({ prepended, grew }) {
    const snap = this.snapshot;
    this.snapshot = null;
    if (prepended && snap?.anchor?.isConnected && !this.stuck) {
      // Keep the message the reader was looking at exactly where it was.
      this.scroller.scrollTop = snap.top + (snap.anchor.offsetTop - snap.anchorTop);
      return;
    }
    if (this.stuck) {
      this.toBottom();
    } else if (grew) {
      this.jump.hidden = false;
    }
  }
}
