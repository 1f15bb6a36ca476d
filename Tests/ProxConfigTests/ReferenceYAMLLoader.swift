import ProxConfig
import Yams

// The YAML loader as it was before our own composer over libyaml's events (issue 8): Yams'
// composer, its duplicate-key error turned into one diagnostic per repeated key by renaming the
// key in a copy of the text and parsing again, and a converter from Yams nodes to ConfigNode.
// Kept here only as the reference YAMLEquivalenceTests compare the new loader with.

/// YAML via Yams' composer (which keeps every node's position), converted to `ConfigNode`.
/// Plain scalars resolve with the YAML 1.2 core schema, as editors do: `off` is a string.
/// Anchors, aliases and merge keys (`<<: *defaults`) work, within a budget: aliases of aliases
/// expand exponentially ("billion laughs": nine lines of `&a [*b, *b, ...]` make 10^9 nodes), so a
/// document may expand to at most `nodeBudget(forBytes:)` nodes; past that it is refused with one
/// diagnostic instead of hanging the loader and eating memory. (Nesting depth is bounded by
/// libyaml itself: "Maximum nesting level reached" at 1000.)
enum ReferenceYAMLLoader {
    /// Without aliases every node takes at least one byte of text, so twice the text's size
    /// never refuses an alias-free document; aliases may add 100,000 nodes on top.
    static func nodeBudget(forBytes n: Int) -> Int { 100_000 + 2 * n }

    static func load(_ text: String, file: String) -> (node: ConfigNode?, diagnostics: [Diagnostic]) {
        let lines = ReferenceSourceLines(text)
        // Yams stops at the first mapping with a repeated key. Each one found is renamed in a
        // copy of the text, to a placeholder of the same length (every other position stays
        // put), and the copy parsed again; the converter drops the renamed entries and reports
        // each at its second occurrence, with its path, beside every other problem.
        var source = lines
        var sourceText = text
        var duplicates: [Position: Duplicate] = [:]
        var root: Node?
        while true {
            do {
                root = try Yams.compose(yaml: sourceText)
                break
            } catch let e as YamlError {
                if case .duplicatedKeysInMapping(let keys, let context) = e, duplicates.count < 1000, let key = keys.first,
                   let second = source.nextOccurrence(ofKey: key, after: context.mark.line, context.mark.column) {
                    source.rename(at: second, length: second.length, placeholder: duplicates.count + 1)
                    sourceText = source.text
                    duplicates[Position(line: second.line, column: second.column)] =
                        Duplicate(key: key, firstLine: context.mark.line, firstColumn: context.mark.column)
                    continue
                }
                return (nil, [diagnostic(e, file: file, lines: lines)])
            } catch {
                return (nil, [Diagnostic(file: file, line: 1, column: 1, path: "", message: "cannot parse YAML: \(error)")])
            }
        }
        guard let root else {
            return (nil, [Diagnostic(file: file, line: 1, column: 1, path: "", message: "the document is empty",
                                     hint: "start with `version: 1`; `prox schema` prints the full format")])
        }
        var c = Converter(file: file, lines: lines, budget: nodeBudget(forBytes: text.utf8.count), duplicates: duplicates)
        let node = c.convert(root, path: "")
        if c.budget < 0 {
            let first = c.exhaustedAt ?? SourceMark(file: file, line: 1, column: 1)
            return (nil, [Diagnostic(at: first, path: "", "the document expands to more than \(nodeBudget(forBytes: text.utf8.count)) values",
                                     hint: "aliases (*name) repeat what their anchor holds; aliases of aliases multiply")])
        }
        return (node, c.diagnostics)
    }

    struct Position: Hashable {
        var line: Int
        var column: Int
    }

    /// A key written a second time in one mapping, and where it was first written.
    struct Duplicate {
        var key: String
        var firstLine: Int
        var firstColumn: Int
    }

    /// Where the text ends: just after its last character that is not blank or a comment.
    static func endOfContent(_ lines: ReferenceSourceLines) -> Position {
        for (i, l) in lines.lines.enumerated().reversed() {
            var end = 0
            var inQuote: Unicode.Scalar? = nil
            for (j, u) in l.enumerated() {
                if let q = inQuote {
                    if u == q { inQuote = nil }
                } else if u == "\"" || u == "'" {
                    inQuote = u
                } else if u == "#" && (j == 0 || l[j - 1] == " " || l[j - 1] == "\t") {
                    break
                }
                if u != " " && u != "\t" && u != "\r" { end = j + 1 }
            }
            if end > 0 { return Position(line: i + 1, column: end + 1) }
        }
        return Position(line: 1, column: 1)
    }

    static func diagnostic(_ e: YamlError, file: String, lines: ReferenceSourceLines) -> Diagnostic {
        let end = endOfContent(lines)
        func d(_ mark: Mark, _ problem: String, _ context: YamlError.Context?) -> Diagnostic {
            var hint: String? = nil
            if let c = context {
                hint = "\(c.text) at line \(c.mark.line), column \(c.mark.column)"
            }
            if problem.contains("tab") { hint = "indent with spaces; YAML does not allow tabs for indentation" }
            // libyaml notices a truncated file at its very end, often a line below the last
            // thing written: point at where the content stops.
            if mark.line > end.line || (mark.line == end.line && mark.column >= end.column) {
                var h = "the file ends here, before what it opened is complete"
                if let c = context, c.mark.line < end.line || (c.mark.line == end.line && c.mark.column < end.column) {
                    h += " (\(c.text) at line \(c.mark.line), column \(c.mark.column))"
                }
                return Diagnostic(file: file, line: end.line, column: end.column, path: "", message: "invalid YAML: \(problem)", hint: h)
            }
            return Diagnostic(file: file, line: mark.line, column: mark.column, path: "", message: "invalid YAML: \(problem)", hint: hint)
        }
        switch e {
        case .scanner(let context, let problem, let mark, _): return d(mark, problem, context)
        case .parser(let context, let problem, let mark, _): return d(mark, problem, context)
        case .composer(let context, let problem, let mark, _): return d(mark, problem, context)
        case .reader(let problem, let offset, _, _):
            return Diagnostic(file: file, line: 1, column: 1, path: "",
                              message: "cannot read the YAML: \(problem)" + (offset.map { " at byte \($0)" } ?? ""))
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return Diagnostic(file: file, line: context.mark.line, column: context.mark.column, path: "",
                              message: "duplicate key \(keys) in the same object",
                              hint: "each key may appear once per object; this is its first occurrence")
        default:
            return Diagnostic(file: file, line: 1, column: 1, path: "", message: "invalid YAML: \(e)")
        }
    }

    struct Converter {
        let file: String
        let lines: ReferenceSourceLines
        /// Nodes left to convert; below 0 the document is refused (see `nodeBudget`).
        var budget: Int
        /// Where the budget ran out.
        var exhaustedAt: SourceMark?
        /// Keys renamed in the parsed copy of the text (see `load`), by position.
        var duplicates: [Position: Duplicate] = [:]
        var diagnostics: [Diagnostic] = []

        func mark(_ m: Mark?) -> SourceMark {
            SourceMark(file: file, line: m?.line ?? 1, column: m?.column ?? 1)
        }

        mutating func convert(_ node: Node, path: String) -> ConfigNode {
            budget -= 1
            guard budget >= 0 else {
                if exhaustedAt == nil { exhaustedAt = mark(node.mark) }
                return ConfigNode(kind: .scalar("", .null), mark: mark(node.mark), path: path)
            }
            switch node {
            case .scalar(let s):
                let type = Self.type(of: s)
                let m = mark(s.mark)
                var valueColumn: Int? = nil
                let q = (s.style == .singleQuoted || s.style == .doubleQuoted) ? 1 : 0
                if s.style == .plain || q == 1, !s.string.contains("\n"), lines.has(s.string, line: m.line, column: m.column + q) {
                    valueColumn = m.column + q
                }
                return ConfigNode(kind: .scalar(s.string, type), mark: m, path: path, valueColumn: valueColumn)
            case .sequence(let seq):
                let items = Array(seq).enumerated().map { i, n in convert(n, path: ConfigNode.childPath(path, index: i)) }
                return ConfigNode(kind: .sequence(items), mark: mark(seq.mark), path: path)
            case .mapping(let map):
                var entries: [ConfigEntry] = []
                var merged: [ConfigEntry] = []
                for (k, v) in map {
                    guard case .scalar(let ks) = k else {
                        diagnostics.append(Diagnostic(at: mark(k.mark), path: path, "keys must be plain strings"))
                        continue
                    }
                    let km = mark(ks.mark)
                    if let dup = duplicates[Position(line: km.line, column: km.column)] {
                        diagnostics.append(Diagnostic(at: km, path: ConfigNode.childPath(path, key: dup.key), "duplicate key '\(dup.key)'",
                                                      hint: "first written at line \(dup.firstLine), column \(dup.firstColumn); the first value is used"))
                        continue
                    }
                    if ks.string == "<<" && ks.style == .plain {
                        merged += mergeSources(v, path: path)
                        continue
                    }
                    let value = convert(v, path: ConfigNode.childPath(path, key: ks.string))
                    entries.append(ConfigEntry(key: ks.string, keyMark: mark(ks.mark), value: value))
                }
                for m in merged where !entries.contains(where: { $0.key == m.key }) {
                    entries.append(m)
                }
                return ConfigNode(kind: .mapping(entries), mark: mark(map.mark), path: path)
            case .alias(let a):
                diagnostics.append(Diagnostic(at: mark(a.mark), path: path, "unresolved alias *\(a.anchor.rawValue)"))
                return ConfigNode(kind: .scalar("", .null), mark: mark(a.mark), path: path)
            }
        }

        /// The entries a merge key (`<<: *a` or `<<: [*a, *b]`) brings in; earlier sources win.
        mutating func mergeSources(_ v: Node, path: String) -> [ConfigEntry] {
            var sources: [Node] = []
            if case .sequence(let s) = v { sources = Array(s) } else { sources = [v] }
            var out: [ConfigEntry] = []
            for src in sources {
                guard case .mapping = src else {
                    diagnostics.append(Diagnostic(at: mark(src.mark), path: path, "a merge key (<<) needs an object or a list of objects"))
                    continue
                }
                let converted = convert(src, path: path)
                for e in converted.entries ?? [] where !out.contains(where: { $0.key == e.key }) { out.append(e) }
            }
            return out
        }

        static func type(of s: Node.Scalar) -> ScalarType {
            switch s.tag.rawValue {
            case "tag:yaml.org,2002:str", "!": return .string
            case "tag:yaml.org,2002:int": return .integer
            case "tag:yaml.org,2002:float": return .number
            case "tag:yaml.org,2002:bool": return .boolean
            case "tag:yaml.org,2002:null": return .null
            default: break
            }
            guard s.style == .plain || s.style == .any else { return .string }
            return resolvePlain(s.string)
        }

        /// YAML 1.2 core schema resolution of a plain scalar.
        static func resolvePlain(_ t: String) -> ScalarType {
            switch t {
            case "", "~", "null", "Null", "NULL": return .null
            case "true", "True", "TRUE", "false", "False", "FALSE": return .boolean
            case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN": return .number
            default: break
            }
            var u = Array(t.utf8)[...]
            if let f = u.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") { u = u.dropFirst() }
            func digits(_ s: ArraySlice<UInt8>) -> Bool { !s.isEmpty && s.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
            if digits(u) { return .integer }
            // [0-9]* (.[0-9]*)? ([eE][-+]?[0-9]+)?, with at least one digit in the mantissa
            var mantissa = u, exponent: ArraySlice<UInt8>? = nil
            if let e = u.firstIndex(where: { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
                mantissa = u[..<e]
                var ex = u[(e + 1)...]
                if let f = ex.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") { ex = ex.dropFirst() }
                exponent = ex
            }
            if let ex = exponent, !digits(ex) { return .string }
            let parts = mantissa.split(separator: UInt8(ascii: "."), maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count <= 2 else { return .string }
            let intPart = parts[0], frac = parts.count == 2 ? parts[1] : []
            let ok = (intPart.isEmpty || digits(intPart)) && (frac.isEmpty || digits(frac)) && !(intPart.isEmpty && frac.isEmpty)
            if ok && (parts.count == 2 || exponent != nil) { return .number }
            return .string
        }
    }
}

/// Source lines as Unicode scalars, for checking whether a scalar appears verbatim.
struct ReferenceSourceLines {
    private(set) var lines: [[Unicode.Scalar]]

    init(_ text: String) {
        var lines: [[Unicode.Scalar]] = [[]]
        for u in text.unicodeScalars {
            if u == "\n" { lines.append([]) } else { lines[lines.count - 1].append(u) }
        }
        self.lines = lines
    }

    /// True when `value` is written at (line, column), both 1-based.
    func has(_ value: String, line: Int, column: Int) -> Bool {
        guard line >= 1, line <= lines.count, column >= 1 else { return false }
        let l = lines[line - 1]
        let v = Array(value.unicodeScalars)
        guard column - 1 + v.count <= l.count else { return false }
        return Array(l[(column - 1)..<(column - 1 + v.count)]) == v
    }
}

extension ReferenceSourceLines {
    /// The text again (lines joined with LF, as they were split).
    var text: String {
        var out: [UInt8] = []
        for (i, l) in lines.enumerated() {
            if i > 0 { out.append(UInt8(ascii: "\n")) }
            for u in l { out.append(contentsOf: UTF8.encode(u)!) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A mapping key as written: where it starts (a quoted key at its quote) and the part to
    /// rename (the key's own characters).
    struct KeySpot {
        var line: Int
        var column: Int
        var renameColumn: Int
        var length: Int
    }

    /// The next occurrence of `key` as a key of the same mapping as the one written at
    /// (line, column), 1-based: in a block mapping, a later line with the key at the same
    /// indentation before the mapping ends; in a flow mapping, a later entry at the same depth.
    func nextOccurrence(ofKey key: String, after line: Int, _ column: Int) -> KeySpot? {
        let k = Array(key.unicodeScalars)
        guard line >= 1, line <= lines.count, column >= 1 else { return nil }
        // Block style.
        for i in line..<lines.count {
            let l = lines[i]
            guard let f = l.firstIndex(where: { $0 != " " }), l[f] != "#", l[f] != "\r" else { continue }
            if f + 1 < column { break }
            if f + 1 == column, let spot = keySpot(k, line: i, at: f) { return spot }
        }
        // Flow style: scan on from the first key, at depth 0 of its mapping.
        var i = line - 1, j = column - 1 + k.count, depth = 0
        while i < lines.count {
            let l = lines[i]
            if j >= l.count { i += 1; j = 0; continue }
            let u = l[j]
            switch u {
            case "\"", "'":
                j += 1
                while true {
                    if i >= lines.count { return nil }
                    let m = lines[i]
                    if j >= m.count { i += 1; j = 0; continue }
                    if u == "\"" && m[j] == "\\" { j += 2; continue }
                    if m[j] == u { j += 1; break }
                    j += 1
                }
                continue
            case "#" where j == 0 || l[j - 1] == " ":
                i += 1; j = 0; continue
            case "{", "[":
                depth += 1
            case "}", "]":
                if depth == 0 { return nil }
                depth -= 1
            case "," where depth == 0:
                var (a, b) = (i, j + 1)
                while a < lines.count {
                    if b >= lines[a].count { a += 1; b = 0; continue }
                    if lines[a][b] == " " || lines[a][b] == "\r" || lines[a][b] == "\t" { b += 1; continue }
                    break
                }
                if a < lines.count, let spot = keySpot(k, line: a, at: b) { return spot }
            default:
                break
            }
            j += 1
        }
        return nil
    }

    /// `key` written at (0-based) line `i`, index `f`, plain or quoted, followed by ':'.
    private func keySpot(_ k: [Unicode.Scalar], line i: Int, at f: Int) -> KeySpot? {
        let l = lines[i]
        var start = f, quote: Unicode.Scalar? = nil
        if f < l.count, l[f] == "\"" || l[f] == "'" { quote = l[f]; start = f + 1 }
        guard start + k.count <= l.count, Array(l[start..<(start + k.count)]) == k else { return nil }
        var e = start + k.count
        if let q = quote {
            guard e < l.count, l[e] == q else { return nil }
            e += 1
        }
        while e < l.count, l[e] == " " { e += 1 }
        guard e < l.count, l[e] == ":" else { return nil }
        return KeySpot(line: i + 1, column: f + 1, renameColumn: start + 1, length: k.count)
    }

    /// Replaces the key at `spot` by a placeholder of the same length, distinct for each `n`
    /// (private-use characters, which no config key uses).
    mutating func rename(at spot: KeySpot, length: Int, placeholder n: Int) {
        var v = n
        for c in 0..<length {
            lines[spot.line - 1][spot.renameColumn - 1 + c] = Unicode.Scalar(0xE000 + UInt32(v % 6000))!
            v /= 6000
        }
    }
}
