// Small wording and formatting helpers, kept apart so the renderer reads as layout only.

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

/** "14:03" today, "Mar 3, 14:03" on other days; plus the long form for a tooltip. */
export function formatTime(iso, now = new Date()) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return { short: "", long: "" };
  const sameDay = date.toDateString() === now.toDateString();
  return { short: (sameDay ? timeFmt : dateTimeFmt).format(date), long: fullFmt.format(date) };
}

/** Whole seconds left until `deadline` (ms), never negative. */
export function secondsLeft(deadline, now = Date.now()) {
  return Math.max(0, Math.ceil((deadline - now) / 1000));
}

const RETRY_REASONS = {
  overloaded: "Claude is overloaded",
  rate_limited: "Claude is busy (rate limited)",
  server_error: "Claude had a server error",
  connection: "Couldn't reach Claude",
};

/** The `generation.retrying` notice, e.g. "Claude is overloaded, retrying in 4 s". */
export function retryNotice(retry, roomModel, now = Date.now()) {
  const lead = RETRY_REASONS[retry.reason] || "Claude didn't answer";
  const left = secondsLeft(retry.at + (Number(retry.retry_in) || 0) * 1000, now);
  let text = left > 0 ? `${lead}, retrying in ${left} s` : `${lead}, retrying now`;
  if (retry.attempt) text += ` (attempt ${retry.attempt})`;
  if (retry.model && roomModel && retry.model !== roomModel) text += ` with ${retry.model}`;
  return text + "…";
}

const ERROR_TEXT = {
  empty: "Type something before sending.",
  too_long: "That message is too long to send.",
  forbidden: "Only the room's owner can do that.",
  invalid_message: "The server refused that request.",
  invalid_json: "The server couldn't read that request.",
  unknown_type: "The server didn't understand that request.",
  busy: "Claude is still replying: regenerate once it has finished.",
  not_found: "That message isn't available for this (only the room's newest reply can be regenerated).",
};

/** The text shown for a server `error` frame (rate limits count down). */
export function errorText(error, now = Date.now()) {
  if (error.code === "rate_limited") {
    const left = error.retry_after != null ? secondsLeft(error.at + error.retry_after * 1000, now) : 0;
    return left > 0
      ? `You're sending messages too fast. Try again in ${left} s.`
      : "You can send messages again.";
  }
  if (error.code === "budget_exceeded") return budgetText(error, now);
  return ERROR_TEXT[error.code] || error.message || "Something went wrong.";
}

/** A `budget_exceeded` refusal: whose budget (the server's words) and when to send again,
 * in the reader's own time (`retry_after` is the wait until the next UTC midnight). */
export function budgetText(error, now = Date.now()) {
  const reason = (error.message || "Today's budget for Claude is used up.").split(" You can send again")[0];
  if (error.retry_after == null) return reason;
  const at = new Date((error.at ?? now) + error.retry_after * 1000);
  const left = Math.max(0, at.getTime() - now);
  const hours = Math.floor(left / 3_600_000);
  const minutes = Math.ceil((left % 3_600_000) / 60_000);
  const wait = hours ? `${hours} h ${minutes} min` : `${minutes} min`;
  return `${reason} You can send again at ${timeFmt.format(at)} (in ${wait}), when the daily budget starts over.`;
}

/** Why a message of ours was refused, without a countdown (it sits in the list). */
export function refusalText(error) {
  if (error.code === "rate_limited") return "you were sending messages too fast. Retry in a moment.";
  if (error.code === "too_long") return "it is too long.";
  if (error.code === "empty") return "it is empty.";
  if (error.code === "budget_exceeded") return "today's budget for Claude is used up (see above).";
  return error.message || "the server refused it.";
}

/** Why a reply ended without completing, for the line under it. */
export function endingNote(message) {
  switch (message.status) {
    case "stopped":
      return message.stopped_by ? `Stopped by ${message.stopped_by} before the end.` : "Stopped before the end.";
    case "interrupted":
      return "Interrupted: the server restarted while Claude was replying.";
    case "error": {
      const code = message.error?.code;
      if (code === "upstream_unavailable") return "Claude is unavailable right now, so this reply failed. Try again in a moment.";
      if (code === "configuration") return "The server is misconfigured, so Claude could not reply.";
      if (code === "upstream_error") return "The reply broke off because of an error on Claude's side.";
      return "Claude could not finish this reply.";
    }
    default:
      return "";
  }
}

export const STATUS_LABELS = {
  streaming: "replying",
  stopped: "stopped",
  error: "error",
  interrupted: "interrupted",
  pending: "pending",
  failed: "not sent",
};
