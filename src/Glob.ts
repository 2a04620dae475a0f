/**
 * Redis glob patterns (`*`, `?`, `[abc]`, `[^a-z]`, `\x` escapes), matched in process exactly as Redis's
 * `stringmatchlen` matches them in SCAN MATCH, so in-flight loads and L1 entries are fenced by the same rule
 * the store applies.
 */

/** Whether `text` matches the glob `pattern`. */
export const matches = (pattern: string, text: string): boolean => match(pattern, 0, text, 0)

const match = (p: string, pi: number, s: string, si: number): boolean => {
  while (pi < p.length) {
    const c = p[pi]!
    switch (c) {
      case "*": {
        while (pi + 1 < p.length && p[pi + 1] === "*") pi++
        if (pi + 1 === p.length) return true
        for (let k = si; k <= s.length; k++) if (match(p, pi + 1, s, k)) return true
        return false
      }
      case "?":
        if (si >= s.length) return false
        si++
        pi++
        break
      case "[": {
        if (si >= s.length) return false
        let i = pi + 1
        const not = p[i] === "^"
        if (not) i++
        let matched = false
        while (i < p.length && p[i] !== "]") {
          if (p[i] === "\\" && i + 1 < p.length) {
            i++
            if (p[i] === s[si]) matched = true
          } else if (i + 2 < p.length && p[i + 1] === "-" && p[i + 2] !== "]") {
            let lo = p.charCodeAt(i)
            let hi = p.charCodeAt(i + 2)
            if (lo > hi) [lo, hi] = [hi, lo]
            const code = s.charCodeAt(si)
            if (code >= lo && code <= hi) matched = true
            i += 2
          } else if (p[i] === s[si]) matched = true
          i++
        }
        // An unterminated class ends at the pattern's end, as in Redis.
        if (not) matched = !matched
        if (!matched) return false
        si++
        pi = i < p.length ? i + 1 : i
        break
      }
      default: {
        // An escaped character matches itself.
        if (c === "\\" && pi + 1 < p.length) pi++
        if (si >= s.length || p[pi] !== s[si]) return false
        si++
        pi++
      }
    }
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
