// A small syntax highlighter for JavaScript and Rust. It tokenizes with sticky regular
// expressions (first matching rule wins) and emits HTML spans with `tok-<kind>` classes.
// Anything else (YAML, plain text) is only escaped. Good enough for an editor, not a parser.

const KEYWORDS = {
  javascript: new Set(
    ("async await break case catch class const continue debugger default delete do else " +
      "export extends finally for function if import in instanceof let new of return static " +
      "super switch throw try typeof var void while with yield").split(" "),
  ),
  rust: new Set(
    ("as async await break const continue crate dyn else enum extern fn for if impl in let " +
      "loop match mod move mut pub ref return self Self static struct super trait type " +
      "unsafe use where while").split(" "),
  ),
};

const LITERALS = {
  javascript: new Set(["true", "false", "null", "undefined", "this", "NaN", "Infinity"]),
  rust: new Set(["true", "false", "None", "Some", "Ok", "Err"]),
};

// Shared rules; a rule is [kind, sticky regex]. The kind `word` is refined afterwards.
const SPACE = ["space", /\s+/y];
const LINE_COMMENT = ["comment", /\/\/[^\n]*/y];
const NUMBER = [
  "number",
  /(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)(?:n|[iuf](?:8|16|32|64|128|size))?/y,
];
const WORD = ["word", /[A-Za-z_$][\w$]*/y];
const PUNCT = ["punct", /[^\sA-Za-z0-9_$]/y];

const RULES = {
  javascript: [
    SPACE,
    LINE_COMMENT,
    ["comment", /\/\*[\s\S]*?(?:\*\/|$)/y],
    ["string", /"(?:\\[\s\S]|[^"\\\n])*"?|'(?:\\[\s\S]|[^'\\\n])*'?/y],
    // A template literal is one string token; `${…}` inside it is not highlighted.
    ["string", /`(?:\\[\s\S]|[^`\\])*`?/y],
    ["regex", /\/(?![*/])(?:\\.|\[(?:\\.|[^\]\\\n])*\]|[^/\\\n[])+\/[dgimsuyv]*/y],
    NUMBER,
    WORD,
    PUNCT,
  ],
  rust: [
    SPACE,
    LINE_COMMENT,
    ["comment", blockComment],
    ["string", /b?r(#*)"[\s\S]*?(?:"\1|$)/y],
    ["string", /b?"(?:\\[\s\S]|[^"\\])*"?/y],
    ["string", /b?'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^'\\\n])'/y],
    ["lifetime", /'[A-Za-z_]\w*/y],
    ["meta", /#!?\[[^\]\n]*\]?/y],
    NUMBER,
    WORD,
    PUNCT,
  ],
};

// Rust block comments nest, which a regular expression cannot count.
function blockComment(text, at) {
  if (!text.startsWith("/*", at)) return null;
  let depth = 0;
  let i = at;
  while (i < text.length) {
    if (text.startsWith("/*", i)) { depth++; i += 2; }
    else if (text.startsWith("*/", i)) { depth--; i += 2; if (depth === 0) break; }
    else i++;
  }
  return text.slice(at, i);
}

function matchRule(rule, text, at) {
  if (typeof rule === "function") return rule(text, at);
  rule.lastIndex = at;
  const m = rule.exec(text);
  return m && m[0] ? m[0] : null;
}

// A `/` starts a regular expression only where an operand is expected, that is not after
// a value (identifier, number, string, closing bracket). Keywords like `return` are not values.
function regexAllowed(previous, language) {
  if (!previous) return true;
  if (previous.kind === "punct") return !/[)\]}]/.test(previous.text);
  if (previous.kind === "word") return KEYWORDS[language].has(previous.text);
  return !["number", "string", "regex"].includes(previous.kind);
}

// Splits `text` into tokens `{kind, text}` that together are exactly `text`.
export function tokenize(text, language) {
  const rules = RULES[language];
  if (!rules) return [{ kind: "plain", text }];
  const tokens = [];
  let previous = null;
  let at = 0;
  while (at < text.length) {
    const before = at;
    for (const [kind, rule] of rules) {
      if (kind === "regex" && !regexAllowed(previous, language)) continue;
      const found = matchRule(rule, text, at);
      if (found === null) continue;
      const token = { kind: refine(kind, found, text, at + found.length, language), text: found };
      tokens.push(token);
      if (kind !== "space" && kind !== "comment") previous = { kind, text: found };
      at += found.length;
      break;
    }
    // The rules cover every character; this only guards against an endless loop.
    if (at === before) tokens.push({ kind: "plain", text: text[at++] });
  }
  return tokens;
}

// Words become keywords, literals, function names (before `(`, or a Rust macro's `!`) or
// types (capitalised); everything else keeps its rule's kind.
function refine(kind, word, text, end, language) {
  if (kind !== "word") return kind;
  if (KEYWORDS[language].has(word)) return "keyword";
  if (LITERALS[language].has(word)) return "literal";
  if (/^\s*\(/.test(text.slice(end, end + 40)) || (language === "rust" && text[end] === "!")) {
    return "function";
  }
  if (/^[A-Z]/.test(word)) return "type";
  return "plain";
}

const UNSTYLED = new Set(["plain", "space", "punct"]);
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

// The highlighted HTML of each line (no newlines inside): a token that spans lines is
// closed at each line end and reopened on the next, so lines can be wrapped individually.
export function highlightLines(text, language) {
  const lines = [""];
  for (const token of tokenize(text, language)) {
    const html = escapeHtml(token.text);
    const pieces = html.includes("\n") ? html.split("\n") : [html];
    pieces.forEach((piece, index) => {
      if (index > 0) lines.push("");
      if (!piece) return;
      lines[lines.length - 1] += UNSTYLED.has(token.kind) ? piece : `<span class="tok-${token.kind}">${piece}</span>`;
    });
  }
  return lines;
}

// `text` as escaped HTML with highlighting spans.
export function highlight(text, language) {
  return highlightLines(text, language).join("\n");
}
