/**
 * Redis glob patterns (`*`, `?`, `[abc]`, `[^a-z]`, `\x` escapes), read by one tokenizer and matched in process
 * exactly as Redis's `stringmatchlen` matches them in SCAN MATCH, so in-flight loads and L1 entries are fenced by
 * the same rule the store applies, and a source that translates globs (to SQL, say) reads them the same way.
 */

/** One element of a glob: a literal character, `*`, `?`, or a character class of inclusive code-unit ranges. */
export type Token =
  | { readonly _tag: "Literal"; readonly char: string }
  | { readonly _tag: "Star" }
  | { readonly _tag: "One" }
  | { readonly _tag: "Class"; readonly negated: boolean; readonly ranges: ReadonlyArray<readonly [number, number]> }

const star: Token = { _tag: "Star" }
const one: Token = { _tag: "One" }

/**
 * The tokens of `pattern`, read as Redis reads it: `\x` is the literal `x` (a trailing `\` is itself), a class
 * range's ends may come in either order, and an unterminated class ends at the pattern's end.
 */
export const tokenize = (pattern: string): ReadonlyArray<Token> => {
  const tokens: Array<Token> = []
  let pi = 0
  while (pi < pattern.length) {
    const c = pattern[pi]!
    if (c === "*") {
      tokens.push(star)
      pi++
    } else if (c === "?") {
      tokens.push(one)
      pi++
    } else if (c === "[") {
      pi = readClass(pattern, pi + 1, tokens)
    } else {
      if (c === "\\" && pi + 1 < pattern.length) pi++
      tokens.push({ _tag: "Literal", char: pattern[pi]! })
      pi++
    }
  }
  return tokens
}

/** Reads the class whose body starts at `start` (after its `[`), pushes it, and returns the index after it. */
const readClass = (p: string, start: number, tokens: Array<Token>): number => {
  let i = start
  const negated = p[i] === "^"
  if (negated) i++
  const ranges: Array<readonly [number, number]> = []
  while (i < p.length && p[i] !== "]") {
    if (p[i] === "\\" && i + 1 < p.length) {
      i++
      ranges.push([p.charCodeAt(i), p.charCodeAt(i)])
    } else if (i + 2 < p.length && p[i + 1] === "-" && p[i + 2] !== "]") {
      const lo = p.charCodeAt(i)
      const hi = p.charCodeAt(i + 2)
      ranges.push(lo <= hi ? [lo, hi] : [hi, lo])
      i += 2
    } else ranges.push([p.charCodeAt(i), p.charCodeAt(i)])
    i++
  }
  tokens.push({ _tag: "Class", negated, ranges })
  // An unterminated class ends at the pattern's end, as in Redis.
  return i < p.length ? i + 1 : i
}

// The matcher runs on the fencing path, often many keys against one pattern in a row: the last pattern's tokens
// are kept, so such a run tokenizes once.
let lastPattern: string | undefined
let lastTokens: ReadonlyArray<Token> = []

/** Whether `text` matches the glob `pattern`. */
export const matches = (pattern: string, text: string): boolean => {
  if (pattern !== lastPattern) {
    lastTokens = tokenize(pattern)
    lastPattern = pattern
  }
  return match(lastTokens, 0, text, 0)
}

const inClass = (token: Extract<Token, { _tag: "Class" }>, code: number): boolean => {
  let found = false
  for (const [lo, hi] of token.ranges) {
    if (code >= lo && code <= hi) {
      found = true
      break
    }
  }
  return found !== token.negated
}

const match = (tokens: ReadonlyArray<Token>, ti: number, s: string, si: number): boolean => {
  while (ti < tokens.length) {
    const token = tokens[ti]!
    switch (token._tag) {
      case "Star": {
        while (ti + 1 < tokens.length && tokens[ti + 1]!._tag === "Star") ti++
        if (ti + 1 === tokens.length) return true
        for (let k = si; k <= s.length; k++) if (match(tokens, ti + 1, s, k)) return true
        return false
      }
      case "One":
        if (si >= s.length) return false
        break
      case "Class":
        if (si >= s.length || !inClass(token, s.charCodeAt(si))) return false
        break
      case "Literal":
        if (si >= s.length || token.char !== s[si]) return false
    }
    si++
    ti++
  }
  return si === s.length
}

/** Whether `pattern` matches every key (only `*`s, with at most one `?`, keys being non-empty). */
export const matchesEverything = (pattern: string): boolean => {
  let stars = 0
  let questions = 0
  for (const c of pattern) {
    if (c === "*") stars++
    else if (c === "?") questions++
    else return false
  }
  return stars > 0 && questions <= 1
}
