import Foundation
import ProxCore

/// Reads a config document, YAML or JSON, into a positioned `ConfigNode` tree.
public enum ConfigLoader {
    public enum Format: String, Sendable { case yaml, json }

    /// JSON when the name ends in `.json`; YAML for `.yaml`/`.yml`; otherwise JSON when the
    /// text starts with `{` and YAML else (YAML's flow style reads most JSON too).
    public static func format(fileName: String, text: String) -> Format {
        let lower = fileName.lowercased()
        if lower.hasSuffix(".json") { return .json }
        if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") { return .yaml }
        let first = text.unicodeScalars.first { !$0.properties.isWhitespace }
        return first == "{" ? .json : .yaml
    }

    /// The document's root node, or the diagnostics that prevented reading it.
    public static func load(text: String, fileName: String) -> (node: ConfigNode?, diagnostics: [Diagnostic]) {
        switch format(fileName: fileName, text: text) {
        case .json: return JSONLoader.load(text, file: fileName)
        case .yaml: return YAMLLoader.load(text, file: fileName)
        }
    }

    /// Reads a file as UTF-8. Throws a diagnostic (line 0) when it cannot.
    public static func read(file path: String) -> Result<String, Diagnostic> {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDir: ObjCBool = false
            let why = !FileManager.default.fileExists(atPath: path, isDirectory: &isDir) ? "no such file"
                : isDir.boolValue ? "is a directory" : "permission denied"
            return .failure(Diagnostic(file: path, line: 0, column: 0, path: "", message: "cannot read the file: \(why)"))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .failure(Diagnostic(file: path, line: 0, column: 0, path: "", message: "cannot read the file: it is not UTF-8 text"))
        }
        return .success(text)
    }
}

/// Source lines as Unicode scalars, for checking whether a scalar appears verbatim.
struct SourceLines {
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

extension SourceLines {
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
