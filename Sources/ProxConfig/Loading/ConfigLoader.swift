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

/// Source lines as Unicode scalars (for placing libyaml's errors where the content ends).
struct SourceLines {
    private(set) var lines: [[Unicode.Scalar]]

    init(_ text: String) {
        var lines: [[Unicode.Scalar]] = [[]]
        for u in text.unicodeScalars {
            if u == "\n" { lines.append([]) } else { lines[lines.count - 1].append(u) }
        }
        self.lines = lines
    }
}
