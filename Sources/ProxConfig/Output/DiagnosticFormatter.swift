import ProxCore

/// `prox validate` output.
public enum DiagnosticFormatter {
    /// One diagnostic per line (`file:line:col: error: path: message`), hints indented below.
    public static func text(_ diagnostics: [Diagnostic]) -> String {
        diagnostics.sortedByPosition().map(\.description).joined(separator: "\n")
    }

    /// For CI: `{"valid", "errors", "warnings", "files", "diagnostics": [...]}`.
    public static func json(_ diagnostics: [Diagnostic], files: [String]) -> String {
        let sorted = diagnostics.sortedByPosition()
        let unreadable = sorted.filter { $0.line == 0 && $0.severity == .error }.map(\.file)
        let items: [JSONValue] = sorted.map { d in
            var o: [(String, JSONValue)] = [
                ("file", .string(d.file)), ("line", .int(Int64(d.line))), ("column", .int(Int64(d.column))),
                ("path", .string(d.path)), ("severity", .string(d.severity.rawValue)), ("message", .string(d.message)),
            ]
            if let h = d.hint { o.append(("hint", .string(h))) }
            // No caret drawn for a terminal: the pattern, and the offset as a number.
            if let c = d.caret { o += [("pattern", .string(c.pattern)), ("offset", .int(Int64(c.offset)))] }
            return .object(o)
        }
        let files: [JSONValue] = files.map { f in
            let mine = sorted.filter { $0.file == f }
            return .object([
                ("file", .string(f)),
                ("valid", .bool(!mine.hasErrors)),
                ("readable", .bool(!unreadable.contains(f))),
                ("errors", .int(Int64(mine.errorCount))),
                ("warnings", .int(Int64(mine.warningCount))),
            ])
        }
        return JSONValue.object([
            ("valid", .bool(!sorted.hasErrors)),
            ("errors", .int(Int64(sorted.errorCount))),
            ("warnings", .int(Int64(sorted.warningCount))),
            ("files", .array(files)),
            ("diagnostics", .array(items)),
        ]).rendered()
    }
}
