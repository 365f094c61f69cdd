// The `@` picker under the composer: typing `@` offers Claude and the room's people in a
// listbox. Arrow keys move, Enter or Tab picks, Escape closes; the textarea keeps the focus
// and points at the active option with aria-activedescendant (the ARIA combobox pattern,
// without a role the textarea may not take).

import { mentionQuery, mentionCandidates, applyMention } from "roomchat/mentions";

export class MentionBox {
  /**
   * @param {HTMLTextAreaElement} textarea
   * @param {HTMLElement} list     an empty <ul> to fill (role="listbox")
   * @param {() => string[]} people  who may be mentioned now
   * @param {() => string|null} me
   */
  constructor(textarea, list, people, me) {
    this.textarea = textarea;
    this.list = list;
    this.people = people;
    this.me = me;
    this.match = null; // {start, query}
    this.options = [];
    this.active = 0;

    textarea.setAttribute("aria-autocomplete", "list");
    textarea.setAttribute("aria-controls", list.id);
    textarea.addEventListener("input", () => this.update());
    textarea.addEventListener("click", () => this.update());
    // Closed a moment after the focus leaves (a click on an option lands first), unless it came
    // back meanwhile: a stale close would hide the list the person just opened with `@`.
    textarea.addEventListener("blur", () =>
      setTimeout(() => {
        if (document.activeElement !== this.textarea) this.close();
      }, 150),
    );
    // Capture on the form: runs before the composer's own Enter-to-send handler.
    textarea.form.addEventListener("keydown", (event) => this.onKey(event), { capture: true });
    list.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus
    list.addEventListener("click", (event) => {
      const option = event.target.closest("[role=option]");
      if (option) this.pick(Number(option.dataset.index));
    });
  }

  get isOpen() {
    return !this.list.hidden;
  }

  update() {
    const t = this.textarea;
    if (t.selectionStart !== t.selectionEnd) return this.close();
    this.match = mentionQuery(t.value, t.selectionStart);
    if (!this.match) return this.close();
    this.options = mentionCandidates(this.match.query, this.people(), this.me());
    if (!this.options.length) return this.close();
    this.active = Math.min(this.active, this.options.length - 1);
    this.draw();
  }

  draw() {
    const id = this.list.id;
    this.list.replaceChildren(
      ...this.options.map((name, i) => {
        const li = document.createElement("li");
        li.id = `${id}-${i}`;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", i === this.active ? "true" : "false");
        li.dataset.index = String(i);
        li.className = i === this.active ? "mention-option is-active" : "mention-option";
        li.textContent = `@${name}`;
        return li;
      }),
    );
    this.list.hidden = false;
    this.textarea.setAttribute("aria-activedescendant", `${id}-${this.active}`);
  }

  close() {
    if (this.list.hidden && !this.match) return;
    this.match = null;
    this.active = 0;
    this.list.hidden = true;
    this.list.replaceChildren();
    this.textarea.removeAttribute("aria-activedescendant");
  }

  pick(index) {
    const name = this.options[index];
    if (!name || !this.match) return;
    const t = this.textarea;
    const { text, caret } = applyMention(t.value, this.match.start, t.selectionStart, name);
    t.value = text;
    t.setSelectionRange(caret, caret);
    this.close();
    t.dispatchEvent(new Event("input", { bubbles: true })); // autosize, typing
    t.focus();
  }

  onKey(event) {
    if (event.target !== this.textarea || !this.isOpen || event.isComposing) return;
    const n = this.options.length;
    let handled = true;
    if (event.key === "ArrowDown") this.active = (this.active + 1) % n;
    else if (event.key === "ArrowUp") this.active = (this.active - 1 + n) % n;
    else if (event.key === "Enter" || event.key === "Tab") {
      if (event.shiftKey) return;
      // The whole name is typed already: Enter sends, as it would without the list.
      if (event.key === "Enter" && this.options[this.active].toLowerCase() === this.match.query.toLowerCase()) {
        this.close();
        return;
      }
      this.pick(this.active);
    } else if (event.key === "Escape") this.close();
    else handled = false;
    if (!handled) return;
    event.preventDefault();
    event.stopPropagation();
    if (this.isOpen) this.draw();
  }
}
