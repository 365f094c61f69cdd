// Claude's replies as Markdown, safely.
//
// Model output is untrusted: it may contain whatever a user coaxed it into writing, including
// HTML and script. Three layers keep it inert:
//  1. marked renders raw HTML in the Markdown as *escaped text* (the reader sees exactly what
//     the model wrote, and nothing of it becomes markup);
//  2. DOMPurify sanitizes the generated HTML anyway (defence in depth against parser quirks);
//  3. links are checked after sanitizing: only http(s)/mailto and same-site paths keep their
//     href, and every link opens in a new tab with rel="noopener noreferrer".
// Images are not loaded (a reply could otherwise make every reader's browser fetch a tracking
// URL): they are shown as links.

import { Marked } from "vendor/marked";
import DOMPurify from "vendor/dompurify";
import hljs from "vendor/highlight";

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

export function escapeHtml(text) {
  return String(text)
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/** True if `href` may stay on a link: http(s), mailto, or a path/anchor on this site. */
export function isSafeHref(href) {
  if (typeof href !== "string") return false;
  const trimmed = href.trim();
  if (!trimmed) return false;
  try {
    const url = new URL(trimmed, window.location.href);
    if (!SAFE_PROTOCOLS.has(url.protocol)) return false;
    return true;
  } catch {
    return false;
  }
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  async: false,
  renderer: {
    // Raw HTML (block or inline) is shown, not interpreted.
    html({ text }) {
      return escapeHtml(text);
    },
    // Highlight fenced code with a known language; anything else stays plain (auto-detection is
    // too slow to redo on every streamed token and often wrong on short snippets).
    code({ text, lang }) {
      const language = (lang || "").trim().split(/\s+/)[0].toLowerCase();
      const known = language && hljs.getLanguage(language);
      const body = known ? hljs.highlight(text, { language, ignoreIllegals: true }).value : escapeHtml(text);
      const cls = known ? `hljs language-${escapeHtml(language)}` : "hljs";
      const label = language ? `<span class="code-lang">${escapeHtml(language)}</span>` : "";
      return `<div class="code-block">${label}<pre><code class="${cls}">${body}</code></pre></div>\n`;
    },
    image({ href, text }) {
      const label = escapeHtml(text || "image");
      if (!isSafeHref(href)) return `<span class="image-alt">[${label}]</span>`;
      return `<a href="${escapeHtml(href)}">[image: ${label}]</a>`;
    },
  },
});

// One DOMPurify hook for links, installed once: fixes what survives sanitizing.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href");
    if (href !== null && !isSafeHref(href)) node.removeAttribute("href");
    if (node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  }
});

const PURIFY_CONFIG = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["img", "style", "form", "input", "button", "textarea", "select", "iframe", "video", "audio", "svg", "math"],
  FORBID_ATTR: ["style", "id", "name"],
  ADD_ATTR: ["target"],
  RETURN_DOM_FRAGMENT: true,
};

/** Markdown text → a sanitized DocumentFragment (never a string, so nothing re-parses it). */
export function renderMarkdown(text, options = undefined) {
  let html;
  try {
    html = marked.parse(text || "", options);
  } catch (err) {
    // A parser bug must not lose the reply: fall back to plain text.
    console.error("markdown:", err);
    html = `<p>${escapeHtml(text)}</p>`;
  }
  const fragment = DOMPurify.sanitize(html, PURIFY_CONFIG);
  // A link whose target was refused (javascript:, data:…) is no link: keep only its text, so
  // it does not look clickable.
  for (const a of fragment.querySelectorAll("a:not([href])")) a.replaceWith(...a.childNodes);
  return fragment;
}

/** People's messages: the same safe Markdown, where a single newline is a line break (chat). */
export function renderUserMarkdown(text) {
  return renderMarkdown(text, { breaks: true });
}

/** Plain text → the same fragment shape, for user messages (never Markdown). */
export function plainText(text) {
  const fragment = document.createDocumentFragment();
  fragment.append(document.createTextNode(text || ""));
  return fragment;
}
