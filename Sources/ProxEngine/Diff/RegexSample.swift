/// Example subjects for a PCRE pattern: strings built from the pattern's own text, so that
/// `prox diff` can send a regex route requests that sit on its boundary. Best effort: the caller
/// keeps only the samples the compiled regex really matches, so a construct this reader does not
/// understand costs a sample, never a wrong answer.
///
/// One sample per top-level alternative (up to `limit`), each built by taking the first
/// alternative of inner groups, one repetition of `?`, `*` and `+` (the minimum for `{n,m}`,
/// at least one), and a representative byte for classes (`[a-z]` gives `a`, `\d` gives `1`).
enum RegexSample {
    static func samples(_ pattern: String, limit: Int = 4) -> [String] {
        var reader = Reader(Array(pattern.utf8))
        let alternatives = reader.alternatives()
        var out: [String] = []
        for alt in alternatives.prefix(limit) {
            let s = String(decoding: alt.render(), as: UTF8.self)
            if !out.contains(s) { out.append(s) }
        }
        return out
    }

    /// A piece of a pattern with its repetition.
    indirect enum Piece {
        case bytes([UInt8])
        case group([Sequence])
        case nothing

        func render() -> [UInt8] {
            switch self {
            case .bytes(let b): return b
            case .group(let alts): return alts.first?.render() ?? []
            case .nothing: return []
            }
        }
    }

    struct Sequence {
        var pieces: [(Piece, Int)] = []
        func render() -> [UInt8] {
            var out: [UInt8] = []
            for (p, n) in pieces {
                let r = p.render()
                for _ in 0..<n { out += r }
            }
            return out
        }
    }

    struct Reader {
        let p: [UInt8]
        var i = 0
        init(_ p: [UInt8]) { self.p = p }

        func at(_ k: Int) -> UInt8 { k < p.count ? p[k] : 0 }

        /// Alternatives up to the end or the `)` that closes the current group.
        mutating func alternatives() -> [Sequence] {
            var alts: [Sequence] = [Sequence()]
            while i < p.count {
                let c = p[i]
                if c == UInt8(ascii: ")") { return alts }
                if c == UInt8(ascii: "|") {
                    i += 1
                    alts.append(Sequence())
                    continue
                }
                let piece = atom()
                let n = quantifier()
                alts[alts.count - 1].pieces.append((piece, n))
            }
            return alts
        }

        /// How many times to repeat the atom just read: one, or the minimum of `{n,m}` if larger.
        mutating func quantifier() -> Int {
            var n = 1
            let c = at(i)
            if c == UInt8(ascii: "?") || c == UInt8(ascii: "*") || c == UInt8(ascii: "+") {
                i += 1
            } else if c == UInt8(ascii: "{") {
                var k = i + 1
                var digits = 0
                var value = 0
                while k < p.count, p[k] >= 48, p[k] <= 57 { value = value * 10 + Int(p[k] - 48); k += 1; digits += 1 }
                guard digits > 0 else { return 1 } // a literal `{`
                while k < p.count, p[k] != UInt8(ascii: "}") { k += 1 }
                i = k + 1
                n = max(1, min(value, 64))
            } else {
                return 1
            }
            // Lazy or possessive suffix.
            if at(i) == UInt8(ascii: "?") || at(i) == UInt8(ascii: "+") { i += 1 }
            return n
        }

        mutating func atom() -> Piece {
            let c = p[i]
            switch c {
            case UInt8(ascii: "^"), UInt8(ascii: "$"):
                i += 1
                return .nothing
            case UInt8(ascii: "."):
                i += 1
                return .bytes([UInt8(ascii: "a")])
            case UInt8(ascii: "["):
                return .bytes(characterClass())
            case UInt8(ascii: "("):
                i += 1
                var lookaround = false
                if at(i) == UInt8(ascii: "?") {
                    let d = at(i + 1)
                    if d == UInt8(ascii: ":") || d == UInt8(ascii: ">") || d == UInt8(ascii: "|") {
                        i += 2
                    } else if d == UInt8(ascii: "=") || d == UInt8(ascii: "!") {
                        lookaround = true; i += 2
                    } else if d == UInt8(ascii: "<") && (at(i + 2) == UInt8(ascii: "=") || at(i + 2) == UInt8(ascii: "!")) {
                        lookaround = true; i += 3
                    } else if d == UInt8(ascii: "<") || d == UInt8(ascii: "'") || (d == UInt8(ascii: "P") && at(i + 2) == UInt8(ascii: "<")) {
                        // A named group: skip the name.
                        let close = d == UInt8(ascii: "'") ? UInt8(ascii: "'") : UInt8(ascii: ">")
                        while i < p.count, p[i] != close { i += 1 }
                        i += 1
                    } else {
                        // Inline options `(?i)`, `(?i:...)`: skip the letters.
                        i += 1
                        while i < p.count, p[i] != UInt8(ascii: ")"), p[i] != UInt8(ascii: ":") { i += 1 }
                        if at(i) == UInt8(ascii: ")") { i += 1; return .nothing }
                        i += 1
                    }
                }
                let inner = alternatives()
                if at(i) == UInt8(ascii: ")") { i += 1 }
                return lookaround ? .nothing : .group(inner)
            case UInt8(ascii: "\\"):
                return .bytes(escape())
            default:
                i += 1
                return .bytes([c])
            }
        }

        /// `\d`, `\w`, `\.` ...: a byte the escape stands for.
        mutating func escape() -> [UInt8] {
            let d = at(i + 1)
            i += 2
            switch d {
            case UInt8(ascii: "d"): return [UInt8(ascii: "1")]
            case UInt8(ascii: "w"): return [UInt8(ascii: "a")]
            case UInt8(ascii: "s"): return [UInt8(ascii: " ")]
            case UInt8(ascii: "D"), UInt8(ascii: "W"), UInt8(ascii: "S"): return [UInt8(ascii: "-")]
            case UInt8(ascii: "A"), UInt8(ascii: "z"), UInt8(ascii: "Z"), UInt8(ascii: "b"), UInt8(ascii: "B"), UInt8(ascii: "G"):
                return []
            case UInt8(ascii: "Q"):
                var out: [UInt8] = []
                while i < p.count, !(p[i] == UInt8(ascii: "\\") && at(i + 1) == UInt8(ascii: "E")) { out.append(p[i]); i += 1 }
                i += 2
                return out
            default: return [d]
            }
        }

        /// A class `[...]`: its first listed byte, or for a negated class a common byte it lacks.
        mutating func characterClass() -> [UInt8] {
            i += 1
            var negated = false
            if at(i) == UInt8(ascii: "^") { negated = true; i += 1 }
            var members: [UInt8] = []
            var first = true
            while i < p.count, p[i] != UInt8(ascii: "]") || first {
                first = false
                var c = p[i]
                if c == UInt8(ascii: "[") && at(i + 1) == UInt8(ascii: ":") {
                    // [:alpha:] and friends.
                    let start = i + 2
                    var k = start
                    while k < p.count, p[k] != UInt8(ascii: ":") { k += 1 }
                    let name = String(decoding: p[start..<min(k, p.count)], as: UTF8.self)
                    members += name == "digit" ? [UInt8(ascii: "1")] : [UInt8(ascii: "a")]
                    i = k + 2
                    continue
                }
                if c == UInt8(ascii: "\\") {
                    let e = escape()
                    members += e
                    continue
                }
                i += 1
                if at(i) == UInt8(ascii: "-") && at(i + 1) != UInt8(ascii: "]") && at(i + 1) != 0 {
                    // A range: its low end represents it; remember the high end for negation.
                    let hi = p[i + 1]
                    i += 2
                    if c <= hi { for b in c...hi { members.append(b) } }
                    continue
                }
                members.append(c)
                c = 0
            }
            i += 1
            if !negated { return members.first.map { [$0] } ?? [] }
            for candidate in Array("a1-_.~zZ".utf8) where !members.contains(candidate) { return [candidate] }
            return []
        }
    }
}
