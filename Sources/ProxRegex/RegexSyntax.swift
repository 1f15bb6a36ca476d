/// A conservative look at a pattern's text, done once at compile time.
///
/// Two questions are answered:
///  - can the pattern be spliced, as `(?:pattern)`, into a combined alternation without changing
///    what it matches? Anything that refers to groups by number or name, resets group numbers,
///    runs code, changes the matching engine's control flow or changes how the rest of the text
///    is parsed is refused, and such patterns are matched on their own.
///  - when the pattern starts with `^` / `\A` (or is compiled anchored), which literal bytes must
///    every subject it matches begin with? The router files such a regex under that prefix.
///
/// "Refused" only costs speed, never correctness, so when in doubt the scanner refuses.
struct PatternSyntax {
    /// Safe to splice into a combined alternation.
    var spliceable = true
    /// A `|` outside any group: the pattern is an alternation at its top level.
    var topLevelAlternation = false

    init(_ p: [UInt8]) {
        var i = 0
        var depth = 0
        let n = p.count
        func at(_ k: Int) -> UInt8 { k < n ? p[k] : 0 }
        /// Index just after the `\E` that closes a `\Q` quote starting its text at `from`, or nil.
        func endOfQuote(_ from: Int) -> Int? {
            var k = from
            while k + 1 < n {
                if p[k] == UInt8(ascii: "\\") && p[k + 1] == UInt8(ascii: "E") { return k + 2 }
                k += 1
            }
            return nil
        }
        scan: while i < n {
            let c = p[i]
            switch c {
            case UInt8(ascii: "\\"):
                let d = at(i + 1)
                switch d {
                case 0:
                    spliceable = false; break scan
                case UInt8(ascii: "1")...UInt8(ascii: "9"), UInt8(ascii: "g"), UInt8(ascii: "k"), UInt8(ascii: "K"):
                    // Back references (numbered or named), subroutine calls, \K.
                    spliceable = false; i += 2
                case UInt8(ascii: "Q"):
                    // \Q...\E quotes; without \E it quotes to the end of the pattern, which would
                    // swallow whatever follows a splice.
                    guard let e = endOfQuote(i + 2) else { spliceable = false; break scan }
                    i = e
                case UInt8(ascii: "c"):
                    i += 3 // \cX: X is taken literally, even ( or [
                default:
                    i += 2
                }
            case UInt8(ascii: "["):
                // A character class: nothing inside is structural.
                var k = i + 1
                if at(k) == UInt8(ascii: "^") { k += 1 }
                if at(k) == UInt8(ascii: "]") { k += 1 }
                var closed = false
                while k < n {
                    let e = p[k]
                    if e == UInt8(ascii: "\\") {
                        if at(k + 1) == UInt8(ascii: "Q") {
                            guard let q = endOfQuote(k + 2) else { break }
                            k = q
                        } else {
                            k += 2
                        }
                    } else if e == UInt8(ascii: "[") && (at(k + 1) == UInt8(ascii: ":") || at(k + 1) == UInt8(ascii: ".") || at(k + 1) == UInt8(ascii: "=")) {
                        // [:alpha:] and friends.
                        let term = at(k + 1)
                        var m = k + 2
                        while m + 1 < n && !(p[m] == term && p[m + 1] == UInt8(ascii: "]")) { m += 1 }
                        guard m + 1 < n else { k = n; break }
                        k = m + 2
                    } else if e == UInt8(ascii: "]") {
                        closed = true
                        k += 1
                        break
                    } else {
                        k += 1
                    }
                }
                guard closed else { spliceable = false; break scan }
                i = k
            case UInt8(ascii: "("):
                let d = at(i + 1)
                if d == UInt8(ascii: "*") {
                    // Verbs ((*COMMIT), (*MARK), (*ACCEPT)...), start-of-pattern options
                    // ((*UTF), (*LIMIT_MATCH=)...), alpha assertions: all refused.
                    spliceable = false; i += 2; depth += 1; continue
                }
                guard d == UInt8(ascii: "?") else { depth += 1; i += 1; continue }
                let e = at(i + 2)
                switch e {
                case UInt8(ascii: "#"):
                    // A comment, closed by the first ')'.
                    var k = i + 3
                    while k < n && p[k] != UInt8(ascii: ")") { k += 1 }
                    i = k + 1
                case UInt8(ascii: ":"), UInt8(ascii: "="), UInt8(ascii: "!"), UInt8(ascii: ">"):
                    depth += 1; i += 3
                case UInt8(ascii: "<"):
                    let f = at(i + 3)
                    if f == UInt8(ascii: "=") || f == UInt8(ascii: "!") {
                        depth += 1; i += 4
                    } else if PatternSyntax.isNameStart(f) {
                        depth += 1; i += 3 // named group; the name and '>' are plain text
                    } else {
                        spliceable = false; depth += 1; i += 3
                    }
                case UInt8(ascii: "'"):
                    depth += 1; i += 3
                case UInt8(ascii: "P"):
                    if at(i + 3) == UInt8(ascii: "<") { depth += 1; i += 4 } else { spliceable = false; depth += 1; i += 3 }
                default:
                    // Option settings: (?i) (?-i) (?i:...). Extended mode (x) changes how the
                    // rest of the text parses (comments could swallow the splice's ')'), and
                    // (?^) interacts with a caseless wrapper: refused. Anything else ((?|, (?(,
                    // (?R), (?1), (?&name), (?C...) ...) is refused too.
                    var k = i + 2
                    var ok = true
                    while k < n {
                        let f = p[k]
                        if f == UInt8(ascii: "i") || f == UInt8(ascii: "m") || f == UInt8(ascii: "n") || f == UInt8(ascii: "s")
                            || f == UInt8(ascii: "J") || f == UInt8(ascii: "U") || f == UInt8(ascii: "-") {
                            k += 1
                        } else {
                            break
                        }
                    }
                    if k == i + 2 { ok = false }
                    if at(k) == UInt8(ascii: ")") {
                        i = k + 1
                    } else if at(k) == UInt8(ascii: ":") {
                        depth += 1; i = k + 1
                    } else {
                        ok = false; depth += 1; i = k
                    }
                    if !ok { spliceable = false }
                }
            case UInt8(ascii: ")"):
                depth -= 1; i += 1
            case UInt8(ascii: "|"):
                if depth == 0 { topLevelAlternation = true }
                i += 1
            default:
                i += 1
            }
        }
        if depth != 0 { spliceable = false }
    }

    static func isNameStart(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || b == UInt8(ascii: "_") || b >= 0x80
    }

    static func isAlnum(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
    }

    /// The literal bytes every match must start with, for a pattern PCRE2 reports as anchored.
    /// Empty when nothing literal is known. The caller checks anchoring and caselessness.
    static func literalPrefix(_ p: [UInt8], anchoredOption: Bool) -> [UInt8] {
        anchoredLiteral(p, anchoredOption: anchoredOption).bytes
    }

    /// `literalPrefix`, and whether the literal is the whole pattern (`^/api/v1`): then a
    /// subject matches exactly when it begins with the literal.
    static func anchoredLiteral(_ p: [UInt8], anchoredOption: Bool) -> (bytes: [UInt8], whole: Bool) {
        let n = p.count
        var from = -1
        if n > 0 && p[0] == UInt8(ascii: "^") { from = 1 }
        else if n > 1 && p[0] == UInt8(ascii: "\\") && p[1] == UInt8(ascii: "A") { from = 2 }
        else if anchoredOption { from = 0 }
        if from < 0 { return ([], false) }
        let run = literalRun(p, from: from)
        return (run.bytes, run.end == n)
    }

    /// The literal bytes the pattern text spells from `from` on, stopping before anything that
    /// is not a plain literal (metacharacters, escapes other than escaped punctuation, non-ASCII,
    /// whitespace) and before a literal that a quantifier applies to. `end` is where the rest
    /// of the pattern text starts: the text from `end` is a valid pattern on its own, and for a
    /// pattern without a top-level `|`, `literal + rest` matches what the pattern matches.
    static func literalRun(_ p: [UInt8], from: Int) -> (bytes: [UInt8], end: Int) {
        let n = p.count
        var i = from
        var out: [UInt8] = []
        while i < n {
            let c = p[i]
            var lit: UInt8
            var len: Int
            if c == UInt8(ascii: "\\") {
                guard i + 1 < n else { break }
                let d = p[i + 1]
                // A backslash before a non-alphanumeric ASCII character makes it literal.
                guard d < 0x80, !isAlnum(d), d > 0x20 else { break }
                lit = d; len = 2
            } else {
                switch c {
                case UInt8(ascii: "^"), UInt8(ascii: "$"), UInt8(ascii: "."), UInt8(ascii: "["), UInt8(ascii: "|"),
                     UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "?"), UInt8(ascii: "*"), UInt8(ascii: "+"),
                     UInt8(ascii: "{"), UInt8(ascii: "#"):
                    return (out, i)
                default:
                    guard c < 0x80, c > 0x20 else { return (out, i) }
                    lit = c; len = 1
                }
            }
            // A quantifier after this literal makes it optional or repeated: stop before it.
            if i + len < n {
                let q = p[i + len]
                if q == UInt8(ascii: "?") || q == UInt8(ascii: "*") || q == UInt8(ascii: "+") || q == UInt8(ascii: "{") {
                    return (out, i)
                }
            }
            out.append(lit)
            i += len
        }
        return (out, i)
    }
}
