/// One problem found in a config: where (file, line, column and the path inside the document),
/// what, and a hint when one helps. `description` is the line `prox validate` prints:
///
///     prox.yaml:12:15: error: routes[3].match.path.regex: missing ) at offset 7
///       hint: ...
public struct Diagnostic: Error, Sendable, Codable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Codable, Hashable {
        /// The config is invalid; it is not compiled and does not replace a running one.
        case error
        /// Worth a look; the config is still valid.
        case warning
    }

    public var file: String
    /// 1-based; 0 when the problem concerns the whole file (it cannot be read).
    public var line: Int
    /// 1-based, in Unicode scalars.
    public var column: Int
    /// Path inside the document (`routes[3].match.path.regex`); empty for the document itself.
    public var path: String
    public var severity: Severity
    public var message: String
    public var hint: String?
    /// For a problem at one place inside a pattern (a regex compile error): the pattern and
    /// the byte offset in it. The text output draws a caret under it; JSON gives the number.
    public var caret: Caret?

    public struct Caret: Sendable, Codable, Hashable {
        public var pattern: String
        /// 0-based, in UTF-8 bytes of `pattern`.
        public var offset: Int

        public init(pattern: String, offset: Int) {
            self.pattern = pattern
            self.offset = offset
        }

        /// The pattern, and a caret under the offset, indented as a hint's text is.
        var drawn: String {
            let u = Array(pattern.utf8)
            let before = String(decoding: u[0..<min(max(0, offset), u.count)], as: UTF8.self)
            return "\(pattern)\n        " + String(repeating: " ", count: before.count) + "^"
        }
    }

    public init(file: String, line: Int, column: Int, path: String, severity: Severity = .error,
                message: String, hint: String? = nil) {
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.severity = severity
        self.message = message
        self.hint = hint
    }

    public init(at mark: SourceMark, path: String, severity: Severity = .error, _ message: String, hint: String? = nil) {
        self.init(file: mark.file, line: mark.line, column: mark.column, path: path, severity: severity,
                  message: message, hint: hint)
    }

    public var mark: SourceMark { SourceMark(file: file, line: line, column: column) }

    public var description: String {
        var s = line > 0 ? "\(file):\(line):\(column): " : "\(file): "
        s += severity.rawValue + ": "
        if !path.isEmpty { s += path + ": " }
        s += message
        if let h = hint, !h.isEmpty { s += "\n  hint: " + h }
        if let c = caret { s += "\n  hint: " + c.drawn }
        return s
    }
}

extension Array where Element == Diagnostic {
    public var hasErrors: Bool { contains { $0.severity == .error } }
    public var errorCount: Int { filter { $0.severity == .error }.count }
    public var warningCount: Int { filter { $0.severity == .warning }.count }

    /// In file order (file, line, column), keeping the order found for equal positions, with
    /// repeats removed (a chain shared by several routes reports a problem once, with the hint
    /// of the first report).
    public func sortedByPosition() -> [Diagnostic] {
        var seen = Set<String>()
        let unique = filter { d in
            seen.insert("\(d.file)\u{0}\(d.line)\u{0}\(d.column)\u{0}\(d.path)\u{0}\(d.severity)\u{0}\(d.message)").inserted
        }
        return unique.enumerated().sorted { a, b in
            let x = a.element, y = b.element
            if x.file != y.file { return x.file < y.file }
            if x.line != y.line { return x.line < y.line }
            if x.column != y.column { return x.column < y.column }
            return a.offset < b.offset
        }.map(\.element)
    }
}
