// Markdown to DOM, for model answers: paragraphs, headings, emphasis, code (highlighted), lists, links,
// block quotes and tables. Everything is built with createElement and text nodes, so HTML in an answer shows
// as text. Links go only to http(s) and mailto, with rel="noopener noreferrer"; images are never loaded:
// their alt text and address show as text. Model output may be hostile: every pattern and scan here is linear in
// the line's length (no regex that backtracks over a run of spaces, no rescan to the end for each opener).

import { h } from "./dom.js";
import { highlight } from "./highlight.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/;
const HEADING = /^ {0,3}(#{1,6})(?:\s|$)/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])\s+/;
const DIVIDER_CELL = /^:?-+:?$/;
const MAX_NESTING = 16; // quotes and lists deeper than this show as text (a hostile answer nests thousands deep)

/** Renders Markdown as a fragment. An unclosed code fence runs to the end (the answer may still be streaming). */
export function renderMarkdown(text: string): DocumentFragment {
  const fragment = document.createDocumentFragment();
  fragment.append(...blocks(text.replace(/\r\n?/g, "\n").split("\n")));
  return fragment;
}

function blocks(lines: string[], depth = 0): Node[] {
  const nests = depth < MAX_NESTING;
  const out: Node[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i] ?? "";
    let match: RegExpMatchArray | null;
    if (!line.trim()) {
      i += 1;
    } else if ((match = line.match(FENCE))) {
      const fence = match[1] ?? "```";
      const language = match[2] ?? "";
      const code: string[] = [];
      for (i += 1; i < lines.length && !(lines[i] ?? "").trim().startsWith(fence); i += 1) code.push(lines[i] ?? "");
      i += 1;
      out.push(codeBlock(code.join("\n"), language));
    } else if ((match = line.match(HEADING))) {
      const level = Math.min((match[1] ?? "#").length + 3, 6); // below the page's and the answer's own headings
      out.push(h(`h${level}` as "h3", {}, ...inline(headingText(line.slice(match[0].length)))));
      i += 1;
    } else if (RULE.test(line)) {
      out.push(h("hr"));
      i += 1;
    } else if (nests && QUOTE.test(line)) {
      const quoted: string[] = [];
      for (; i < lines.length && QUOTE.test(lines[i] ?? ""); i += 1) quoted.push((lines[i] ?? "").replace(QUOTE, ""));
      out.push(h("blockquote", {}, ...blocks(quoted, depth + 1)));
    } else if (nests && ITEM.test(line)) {
      i = list(lines, i, out, depth);
    } else if (line.includes("|") && isDivider(lines[i + 1] ?? "")) {
      i = table(lines, i, out);
    } else {
      const paragraph: string[] = [];
      for (; i < lines.length && (lines[i] ?? "").trim() && !startsBlock(lines[i] ?? "", nests); i += 1) {
        paragraph.push((lines[i] ?? "").trim());
      }
      const children: Node[] = [];
      paragraph.forEach((part, index) => {
        if (index) children.push(h("br"));
        children.push(...inline(part));
      });
      out.push(h("p", {}, ...children));
    }
  }
  return out;
}

/** A heading's text: trimmed, less a closing run of `#` (one that follows a space, or is all there is). */
function headingText(rest: string): string {
  const text = rest.trim();
  let end = text.length;
  while (end > 0 && text[end - 1] === "#") end -= 1;
  return end === 0 || /\s/.test(text[end - 1] ?? "") ? text.slice(0, end).trimEnd() : text;
}

/** A table's divider row: cells of dashes, each with an optional colon at either end (`| :-- | --: |`). */
function isDivider(line: string): boolean {
  return line.includes("-") && cells(line).every((cell) => DIVIDER_CELL.test(cell));
}

function startsBlock(line: string, nests: boolean): boolean {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || (nests && (QUOTE.test(line) || ITEM.test(line)));
}

function codeBlock(code: string, language: string): HTMLElement {
  const attributes = language ? { class: `language-${language.replace(/[^\w+-]/g, "")}` } : {};
  return h("pre", { tabindex: 0 }, h("code", attributes, ...highlight(code, language)));
}

/** A list starting at line `start`: items of its kind, each with the lines indented under it (nested blocks). */
function list(lines: string[], start: number, out: Node[], depth: number): number {
  const first = (lines[start] ?? "").match(ITEM);
  const ordered = /\d/.test(first?.[2] ?? "");
  const node = ordered ? h("ol", { start: Number.parseInt(first?.[2] ?? "1", 10) || null }) : h("ul");
  let i = start;
  while (i < lines.length) {
    const match = (lines[i] ?? "").match(ITEM);
    if (!match || /\d/.test(match[2] ?? "") !== ordered) break;
    const indent = match[0].length;
    const body = [(lines[i] ?? "").slice(indent)];
    for (i += 1; i < lines.length; i += 1) {
      const next = lines[i] ?? "";
      const blankThenIndented = !next.trim() && /^\s{2,}\S/.test(lines[i + 1] ?? "");
      if (next.trim() && !/^\s{2,}/.test(next)) break;
      if (!next.trim() && !blankThenIndented) break;
      body.push(next.replace(new RegExp(`^ {0,${indent}}`), ""));
    }
    const content = blocks(body, depth + 1);
    const only = content.length === 1 ? content[0] : undefined;
    node.append(h("li", {}, ...(only instanceof HTMLParagraphElement ? Array.from(only.childNodes) : content)));
    while (i < lines.length && !(lines[i] ?? "").trim() && ITEM.test(lines[i + 1] ?? "")) i += 1;
  }
  out.push(node);
  return i;
}

function cells(row: string): string[] {
  return row
    .trim()
    .replace(/^\|/, "")
    .replace(/\|$/, "")
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim());
}

function table(lines: string[], start: number, out: Node[]): number {
  const head = cells(lines[start] ?? "");
  const row = (values: string[], tag: "th" | "td") =>
    h("tr", {}, ...head.map((_, index) => h(tag, tag === "th" ? { scope: "col" } : {}, ...inline(values[index] ?? ""))));
  const body: HTMLTableRowElement[] = [];
  let i = start + 2;
  for (; i < lines.length && (lines[i] ?? "").includes("|") && (lines[i] ?? "").trim(); i += 1) {
    body.push(row(cells(lines[i] ?? ""), "td"));
  }
  out.push(h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, row(head, "th")), h("tbody", {}, ...body))));
  return i;
}

const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:"]);

/** The address if it is absolute and http(s) or mailto, else null (relative, javascript:, data: ...). */
export function safeUrl(address: string): string | null {
  try {
    const url = new URL(address);
    return SAFE_SCHEMES.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

/** What one line's scans found, so that no scan runs twice over the same text (hostile input stays linear):
 * each `[` with its `]`, and from where on a closer of a mark, a run of backticks or a link title's end is known
 * to be missing. */
interface Scans {
  brackets: Map<number, number> | null;
  noCloser: Map<string, number>;
  noTicks: Map<string, number>;
  noTitleEnd: number;
}

function scans(): Scans {
  return { brackets: null, noCloser: new Map(), noTicks: new Map(), noTitleEnd: Infinity };
}

/** Each `[` of the text with the `]` that closes it (brackets nest; a backslash escapes the next character). */
function brackets(text: string): Map<number, number> {
  const pairs = new Map<number, number>();
  const open: number[] = [];
  for (let j = 0; j < text.length; j += 1) {
    const char = text[j];
    if (char === "\\") j += 1;
    else if (char === "[") open.push(j);
    else if (char === "]" && open.length) pairs.set(open.pop() ?? 0, j);
  }
  return pairs;
}

function skipSpace(text: string, from: number): number {
  let j = from;
  while (j < text.length && /\s/.test(text[j] ?? "")) j += 1;
  return j;
}

const DESTINATION = /<?([^\s<>()]*(?:\([^\s()]*\)[^\s<>()]*)*)>?/y;

/** `[text](address "title")` at `start` (the `[`): the text, the address and where it ends; null if it is none. */
function bracketed(text: string, start: number, found: Scans): { label: string; address: string; end: number } | null {
  found.brackets ??= brackets(text);
  const close = found.brackets.get(start);
  if (close === undefined || text[close + 1] !== "(") return null;
  DESTINATION.lastIndex = skipSpace(text, close + 2);
  const destination = DESTINATION.exec(text);
  if (!destination) return null;
  const after = DESTINATION.lastIndex;
  let end = skipSpace(text, after);
  if (text[end] !== ")") {
    // a title: a space, then `"`, `'` or `(`, up to the first `"`, `'` or `)` that spaces and `)` follow
    if (end === after || !"\"'(".includes(text[end] ?? "x") || end + 1 >= found.noTitleEnd) return null;
    let j = end + 1;
    for (; j < text.length; j += 1) {
      if (!"\"')".includes(text[j] ?? "x")) continue;
      const next = skipSpace(text, j + 1);
      if (text[next] === ")") break;
    }
    if (j >= text.length) {
      found.noTitleEnd = Math.min(found.noTitleEnd, end + 1);
      return null;
    }
    end = skipSpace(text, j + 1);
  }
  return { label: text.slice(start + 1, close), address: destination[1] ?? "", end: end + 1 };
}

const PUNCTUATION = /[!-/:-@[-`{-~]/;
const AUTOLINK = /<((?:https?:\/\/|mailto:)[^\s<>]+)>/y;
const DELIMITERS: [string, "strong" | "em" | "del"][] = [
  ["**", "strong"],
  ["__", "strong"],
  ["~~", "del"],
  ["*", "em"],
  ["_", "em"],
];

/** Inline Markdown to nodes: escapes, code spans, images (as text), links, autolinks, emphasis. */
export function inline(text: string, inLink = false): Node[] {
  const nodes: Node[] = [];
  const found = scans();
  let plain = "";
  const flush = () => {
    if (plain) nodes.push(document.createTextNode(plain));
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    const char = text[i] ?? "";
    if (char === "\\" && PUNCTUATION.test(text[i + 1] ?? "")) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (char === "`") {
      let run = i;
      while (text[run] === "`") run += 1;
      const ticks = text.slice(i, run);
      const close = run < (found.noTicks.get(ticks) ?? Infinity) ? text.indexOf(ticks, run) : -1;
      if (close < 0) found.noTicks.set(ticks, Math.min(run, found.noTicks.get(ticks) ?? Infinity));
      if (close > 0) {
        flush();
        nodes.push(h("code", {}, text.slice(i + ticks.length, close).trim() || text.slice(i + ticks.length, close)));
        i = close + ticks.length;
        continue;
      }
      plain += ticks;
      i += ticks.length;
      continue;
    }
    if (char === "!" && text[i + 1] === "[") {
      const image = bracketed(text, i + 1, found);
      if (image) {
        flush();
        nodes.push(h("span", { class: "image" }, `[image: ${image.label || "no description"}] ${image.address}`));
        i = image.end;
        continue;
      }
    }
    if (char === "[" && !inLink) {
      const link = bracketed(text, i, found);
      if (link) {
        flush();
        nodes.push(anchor(link.address, inline(link.label, true), `[${link.label}](${link.address})`));
        i = link.end;
        continue;
      }
    }
    if (char === "<" && !inLink) {
      AUTOLINK.lastIndex = i;
      const auto = AUTOLINK.exec(text);
      if (auto) {
        flush();
        nodes.push(anchor(auto[1] ?? "", [document.createTextNode(auto[1] ?? "")], auto[0]));
        i += auto[0].length;
        continue;
      }
    }
    const emphasis = DELIMITERS.find(([mark]) => text.startsWith(mark, i));
    if (emphasis) {
      const [mark, tag] = emphasis;
      const close = closing(text, i, mark, found);
      if (close > 0) {
        flush();
        nodes.push(h(tag, {}, ...inline(text.slice(i + mark.length, close), inLink)));
        i = close + mark.length;
        continue;
      }
      plain += mark;
      i += mark.length;
      continue;
    }
    plain += char;
    i += 1;
  }
  flush();
  return nodes;
}

/** Where the emphasis opened by `mark` at `start` closes, or -1: text right after the opener, before the closer;
 * `_` only at word boundaries, so that snake_case stays as it is. */
function closing(text: string, start: number, mark: string, found: Scans): number {
  const after = text[start + mark.length] ?? "";
  if (!after.trim()) return -1;
  if (mark[0] === "_" && /\w/.test(text[start - 1] ?? "")) return -1;
  const from = start + mark.length + 1;
  if (from >= (found.noCloser.get(mark) ?? Infinity)) return -1; // an earlier scan went past here and found none
  for (let j = from; j <= text.length - mark.length; j += 1) {
    if (text[j] === "\\") {
      j += 1;
      continue;
    }
    if (text[j] === "`") {
      const end = text.indexOf("`", j + 1);
      if (end > 0) j = end;
      continue;
    }
    if (!text.startsWith(mark, j) || !(text[j - 1] ?? "").trim()) continue;
    if (mark.length === 1 && text[j + 1] === mark) {
      j += 1; // a double mark is not this single one's closer
      continue;
    }
    if (mark[0] === "_" && /\w/.test(text[j + mark.length] ?? "")) continue;
    return j;
  }
  found.noCloser.set(mark, from);
  return -1;
}

/** A link to a safe address, opening in a new tab; any other address shows as the Markdown it was. */
function anchor(address: string, label: Node[], source: string): Node {
  const href = safeUrl(address);
  if (!href) return document.createTextNode(source);
  return h("a", { href, rel: "noopener noreferrer", target: "_blank", referrerpolicy: "no-referrer" }, ...label);
}
