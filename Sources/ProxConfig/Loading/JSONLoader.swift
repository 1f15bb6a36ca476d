import ProxCore

/// A strict JSON (RFC 8259) parser that keeps every value's line and column. Duplicate keys are
/// reported at their second occurrence (the first one is kept).
enum JSONLoader {
    static func load(_ text: String, file: String) -> (node: ConfigNode?, diagnostics: [Diagnostic]) {
        var p = Parser(scalars: Array(text.unicodeScalars), file: file)
        do throws(Diagnostic) {
            p.skipSpace()
            guard !p.atEnd else {
                return (nil, [Diagnostic(file: file, line: 1, column: 1, path: "", message: "the document is empty")])
            }
            let node = try p.value(path: "", depth: 0)
            p.skipSpace()
            if !p.atEnd { throw p.fail("unexpected text after the document") }
            return (node, p.diagnostics)
        } catch {
            return (nil, p.diagnostics + [error])
        }
    }

    struct Parser {
        let s: [Unicode.Scalar]
        let file: String
        var i = 0
        var line = 1
        var col = 1
        var diagnostics: [Diagnostic] = []

        init(scalars: [Unicode.Scalar], file: String) {
            self.s = scalars
            self.file = file
        }

        var atEnd: Bool { i >= s.count }
        var here: SourceMark { SourceMark(file: file, line: line, column: col) }

        func fail(_ message: String, hint: String? = nil) -> Diagnostic {
            let found = atEnd ? "the end of the file" : "'\(s[i])'"
            return Diagnostic(at: here, path: "", "invalid JSON: \(message)" + (message.hasSuffix("found") ? " \(found)" : ""), hint: hint)
        }

        mutating func advance() {
            if s[i] == "\n" { line += 1; col = 1 } else { col += 1 }
            i += 1
        }

        mutating func skipSpace() {
            while i < s.count, s[i] == " " || s[i] == "\t" || s[i] == "\n" || s[i] == "\r" { advance() }
        }

        mutating func expect(_ c: Unicode.Scalar, _ what: String) throws(Diagnostic) {
            skipSpace()
            guard i < s.count, s[i] == c else { throw fail("expected \(what), found") }
            advance()
        }

        mutating func value(path: String, depth: Int) throws(Diagnostic) -> ConfigNode {
            skipSpace()
            guard depth < 200 else { throw fail("nested too deeply") }
            guard i < s.count else { throw fail("expected a value, found") }
            let start = here
            switch s[i] {
            case "{":
                advance()
                var entries: [ConfigEntry] = []
                skipSpace()
                if i < s.count, s[i] == "}" { advance(); return ConfigNode(kind: .mapping([]), mark: start, path: path) }
                while true {
                    skipSpace()
                    guard i < s.count, s[i] == "\"" else {
                        throw fail(i < s.count && s[i] == "}" ? "a trailing comma before '}'" : "expected a key in double quotes, found")
                    }
                    let keyMark = here
                    let (key, _) = try string()
                    try expect(":", "':' after the key")
                    let v = try value(path: ConfigNode.childPath(path, key: key), depth: depth + 1)
                    if let first = entries.first(where: { $0.key == key }) {
                        diagnostics.append(Diagnostic(at: keyMark, path: ConfigNode.childPath(path, key: key),
                                                      "duplicate key '\(key)'", hint: "first written at line \(first.keyMark.line), column \(first.keyMark.column)"))
                    } else {
                        entries.append(ConfigEntry(key: key, keyMark: keyMark, value: v))
                    }
                    skipSpace()
                    guard i < s.count else { throw fail("expected ',' or '}', found") }
                    if s[i] == "," { advance(); continue }
                    if s[i] == "}" { advance(); break }
                    throw fail("expected ',' or '}', found")
                }
                return ConfigNode(kind: .mapping(entries), mark: start, path: path)
            case "[":
                advance()
                var items: [ConfigNode] = []
                skipSpace()
                if i < s.count, s[i] == "]" { advance(); return ConfigNode(kind: .sequence([]), mark: start, path: path) }
                while true {
                    skipSpace()
                    if i < s.count, s[i] == "]" { throw fail("a trailing comma before ']'") }
                    items.append(try value(path: ConfigNode.childPath(path, index: items.count), depth: depth + 1))
                    skipSpace()
                    guard i < s.count else { throw fail("expected ',' or ']', found") }
                    if s[i] == "," { advance(); continue }
                    if s[i] == "]" { advance(); break }
                    throw fail("expected ',' or ']', found")
                }
                return ConfigNode(kind: .sequence(items), mark: start, path: path)
            case "\"":
                let (text, verbatim) = try string()
                return ConfigNode(kind: .scalar(text, .string), mark: start, path: path,
                                  valueColumn: verbatim ? start.column + 1 : nil)
            case "t", "f", "n":
                for (word, type) in [("true", ScalarType.boolean), ("false", .boolean), ("null", .null)] {
                    let w = Array(word.unicodeScalars)
                    if i + w.count <= s.count, Array(s[i..<(i + w.count)]) == w {
                        for _ in w { advance() }
                        return ConfigNode(kind: .scalar(word, type), mark: start, path: path, valueColumn: start.column)
                    }
                }
                throw fail("expected a value, found", hint: "strings need double quotes")
            default:
                if s[i] == "-" || ("0"..."9").contains(s[i]) { return try number(path: path) }
                throw fail("expected a value, found", hint: s[i] == "'" ? "JSON strings use double quotes" : "strings need double quotes")
            }
        }

        mutating func number(path: String) throws(Diagnostic) -> ConfigNode {
            let start = here
            var text = ""
            var isInt = true
            func take(_ pred: (Unicode.Scalar) -> Bool) -> Int {
                var n = 0
                while i < s.count, pred(s[i]) { text.unicodeScalars.append(s[i]); advance(); n += 1 }
                return n
            }
            let digit: (Unicode.Scalar) -> Bool = { ("0"..."9").contains($0) }
            _ = take { $0 == "-" }
            let intDigits = take(digit)
            guard intDigits > 0 else { throw fail("expected digits, found") }
            if intDigits > 1 && text.unicodeScalars.first(where: { $0 != "-" }) == "0" { throw Diagnostic(at: start, path: path, "invalid JSON: numbers do not start with 0") }
            if i < s.count, s[i] == "." {
                isInt = false
                text += "."; advance()
                guard take(digit) > 0 else { throw fail("expected digits after '.', found") }
            }
            if i < s.count, s[i] == "e" || s[i] == "E" {
                isInt = false
                text.unicodeScalars.append(s[i]); advance()
                _ = take { $0 == "+" || $0 == "-" }
                guard take(digit) > 0 else { throw fail("expected exponent digits, found") }
            }
            return ConfigNode(kind: .scalar(text, isInt ? .integer : .number), mark: start, path: path, valueColumn: start.column)
        }

        /// A string literal; `verbatim` when it had no escapes (its value appears as written).
        mutating func string() throws(Diagnostic) -> (String, Bool) {
            advance()  // opening quote
            var out = String.UnicodeScalarView()
            var verbatim = true
            while true {
                guard i < s.count else { throw fail("unterminated string: expected '\"', found") }
                let c = s[i]
                if c == "\"" { advance(); break }
                if c.value < 0x20 { throw fail("control characters must be escaped in strings (\\n, \\t)") }
                if c == "\\" {
                    verbatim = false
                    advance()
                    guard i < s.count else { throw fail("unterminated escape, found") }
                    let e = s[i]
                    switch e {
                    case "\"": out.append("\""); advance()
                    case "\\": out.append("\\"); advance()
                    case "/": out.append("/"); advance()
                    case "b": out.append("\u{08}"); advance()
                    case "f": out.append("\u{0C}"); advance()
                    case "n": out.append("\n"); advance()
                    case "r": out.append("\r"); advance()
                    case "t": out.append("\t"); advance()
                    case "u":
                        advance()
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code) {
                            guard i + 1 < s.count, s[i] == "\\", s[i + 1] == "u" else { throw fail("unpaired surrogate in \\u escape") }
                            advance(); advance()
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("invalid low surrogate in \\u escape") }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let u = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                        out.append(u)
                    default:
                        throw fail("invalid escape '\\\(e)'", hint: "write \\\\ for a backslash")
                    }
                    continue
                }
                out.append(c)
                advance()
            }
            return (String(out), verbatim)
        }

        mutating func hex4() throws(Diagnostic) -> UInt32 {
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard i < s.count, let h = hexValue(UInt8(truncatingIfNeeded: s[i].value)), s[i].value < 128 else {
                    throw fail("expected 4 hex digits in \\u escape, found")
                }
                v = v << 4 | UInt32(h)
                advance()
            }
            return v
        }
    }
}
