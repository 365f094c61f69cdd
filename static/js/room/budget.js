// Today's spend against the daily limits (SPEC §6 snapshot `budget`, §8) in the side panel
// (the words for a `budget_exceeded` refusal are in format.js). The snapshot brings the figures; after each
// `generation.finished` the room's spend grows by its `cost_usd`, and the reader's by their share
// (split evenly among the distinct authors the reply answered, as the server charges it).

const money = (usd) => `$${(Number(usd) || 0).toFixed(2)}`;

/** "$0.40 of $5.00" (or "$0.40, no limit"). */
export function spendText(spent, limit) {
  return limit == null ? `${money(spent)}, no limit` : `${money(spent)} of ${money(limit)}`;
}

/** The reader's share of a finished reply's cost, from the messages it answered. */
export function shareOf(messages, replyId, me, cost) {
  const i = messages.findIndex((m) => m.id === replyId);
  if (i < 0 || !cost) return 0;
  const reply = messages[i];
  let answered = [];
  if (Array.isArray(reply.in_reply_to) && reply.in_reply_to.length) {
    const ids = new Set(reply.in_reply_to);
    answered = messages.filter((m) => ids.has(m.id));
  } else {
    for (let j = i - 1; j >= 0 && messages[j].role !== "assistant"; j--) answered.push(messages[j]);
  }
  const authors = new Set(answered.filter((m) => m.role === "user" && m.author).map((m) => m.author));
  return authors.has(me) ? cost / authors.size : 0;
}

/** The budget after a finished reply (pure). */
export function afterFinished(budget, frame, messages, me) {
  const cost = Number(frame.cost_usd) || 0;
  if (!budget || !cost) return budget;
  return {
    ...budget,
    room_spent_usd: budget.room_spent_usd + cost,
    user_spent_usd: budget.user_spent_usd + shareOf(messages, frame.message_id, me, cost),
  };
}

/** The side panel's "Today" card (#budget); room.js hands it every frame after the reducer. */
export class BudgetView {
  constructor(root) {
    this.root = root;
    this.budget = null;
  }

  onFrame(frame, state) {
    if (!this.root) return;
    if (frame.type === "room.snapshot" && frame.budget) {
      this.budget = { ...frame.budget };
    } else if (frame.type === "generation.finished") {
      this.budget = afterFinished(this.budget, frame, state.messages || [], state.me);
    } else {
      return;
    }
    this.render();
  }

  render() {
    const b = this.budget;
    if (!b) return;
    this.root.hidden = false;
    const room = this.root.querySelector("[data-budget=room]");
    const user = this.root.querySelector("[data-budget=user]");
    room.textContent = spendText(b.room_spent_usd, b.room_limit_usd);
    user.textContent = spendText(b.user_spent_usd, b.user_limit_usd);
    const over = (spent, limit) => limit != null && spent >= limit;
    room.classList.toggle("over", over(b.room_spent_usd, b.room_limit_usd));
    user.classList.toggle("over", over(b.user_spent_usd, b.user_limit_usd));
  }
}
