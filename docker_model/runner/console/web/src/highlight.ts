// A small code highlighter: comments, strings, numbers and keywords of a few common languages, as spans
// whose text is set as text (never markup).

import { h } from "./dom.js";

interface Grammar {
  comment: RegExp; // sources of alternatives, joined into one scanner below
  keywords: Set<string>;
}

const words = (text: string): Set<string> => new Set(text.split(" "));

const C_LIKE_COMMENT = /\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/;
const HASH_COMMENT = /#[^\n]*/;

const JS = words(
  "async await break case catch class const continue default delete do else export extends false finally for " +
    "from function if import in instanceof interface let new null of return static super switch this throw true " +
    "try type typeof undefined var void while yield enum implements private protected public readonly",
);
const GRAMMARS: Record<string, Grammar> = {
  js: { comment: C_LIKE_COMMENT, keywords: JS },
  python: {
    comment: HASH_COMMENT,
    keywords: words(
      "and as assert async await break class continue def del elif else except False finally for from global if " +
        "import in is lambda None nonlocal not or pass raise return True try while with yield self match case",
    ),
  },
  shell: {
    comment: HASH_COMMENT,
    keywords: words("if then else elif fi for while until do done case esac function in return export local echo"),
  },
  c: {
    comment: C_LIKE_COMMENT,
    keywords: words(
      "auto bool break case char class const continue default do double else enum extern false float for fn func " +
        "go goto if impl import int let long match mut namespace new nil null package private public pub return " +
        "self short signed sizeof static struct switch template this throw true try type typedef union unsigned " +
        "use using var void volatile while defer chan map range interface string",
    ),
  },
  json: { comment: /(?!)/, keywords: words("true false null") },
};

const ALIASES: Record<string, string> = {
  javascript: "js", ts: "js", typescript: "js", jsx: "js", tsx: "js", mjs: "js",
  py: "python", python3: "python",
  sh: "shell", bash: "shell", zsh: "shell", console: "shell",
  cpp: "c", "c++": "c", h: "c", java: "c", go: "c", golang: "c", rust: "c", rs: "c", cs: "c", csharp: "c",
  kotlin: "c", swift: "c",
};

export function grammarFor(language: string): Grammar | undefined {
  const name = language.toLowerCase();
  return GRAMMARS[ALIASES[name] ?? name];
}

const STRING = /"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|`(?:[^`\\]|\\.)*`?/;
const NUMBER = /\b(?:0x[\da-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\b/;
const WORD = /[A-Za-z_$][\w$]*/;

/** The code as text nodes and spans (`hl-comment`, `hl-string`, `hl-number`, `hl-keyword`). */
export function highlight(code: string, language: string): Node[] {
  const grammar = grammarFor(language);
  if (!grammar) return [document.createTextNode(code)];
  const scanner = new RegExp(
    `(${grammar.comment.source})|(${STRING.source})|(${NUMBER.source})|(${WORD.source})`,
    "g",
  );
  const nodes: Node[] = [];
  let plain = "";
  let last = 0;
  for (const match of code.matchAll(scanner)) {
    const [text, comment, string, num, word] = match;
    const kind = comment
      ? "comment"
      : string
        ? "string"
        : num
          ? "number"
          : word && grammar.keywords.has(word)
            ? "keyword"
            : null;
    plain += code.slice(last, match.index);
    last = match.index + text.length;
    if (!kind) {
      plain += text;
      continue;
    }
    if (plain) nodes.push(document.createTextNode(plain));
    plain = "";
    nodes.push(h("span", { class: `hl-${kind}` }, text));
  }
  plain += code.slice(last);
  if (plain) nodes.push(document.createTextNode(plain));
  return nodes;
}
