import Foundation
import ProxConfig
import Testing

/// The repository root, from this file's path.
let repoRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A minimal valid document to build test configs on: one listener, one pool.
let prelude = """
version: 1
listeners:
  - id: main
    address: 127.0.0.1:8080
pools:
  - id: api
    endpoints: [127.0.0.1:9000]

"""

/// The prelude without its pool (for configs that proxy nowhere: an unused pool is a warning).
let preludeNoPools = prelude.replacingOccurrences(of: "pools:\n  - id: api\n    endpoints: [127.0.0.1:9000]\n", with: "")

func compile(_ yaml: String, file: String = "t.yaml") -> CompileResult {
    ConfigCompiler.compile(text: yaml, fileName: file, version: 1)
}

/// The single diagnostic a config produces, checked for position, path and a message fragment.
func expectOne(_ yaml: String, _ position: String, _ path: String, _ message: String, hint: String? = nil,
               severity: Diagnostic.Severity = .error, sourceLocation: SourceLocation = #_sourceLocation) {
    let r = compile(yaml)
    let errs = r.diagnostics
    #expect(errs.count == 1, "expected one diagnostic, got:\n\(DiagnosticFormatter.text(errs))", sourceLocation: sourceLocation)
    guard let d = errs.first else { return }
    #expect("\(d.line):\(d.column)" == position, "\(d)", sourceLocation: sourceLocation)
    #expect(d.path == path, "\(d)", sourceLocation: sourceLocation)
    #expect(d.message.contains(message), "\(d)", sourceLocation: sourceLocation)
    #expect(d.severity == severity, "\(d)", sourceLocation: sourceLocation)
    if let hint { #expect(d.hint?.contains(hint) == true, "\(d)", sourceLocation: sourceLocation) }
    if severity == .error { #expect(r.snapshot == nil, sourceLocation: sourceLocation) }
}

/// Compiles a config expected to be valid, failing on any diagnostic.
func valid(_ yaml: String, file: String = "t.yaml", sourceLocation: SourceLocation = #_sourceLocation) -> Snapshot? {
    let r = compile(yaml, file: file)
    #expect(r.diagnostics.isEmpty, "\(DiagnosticFormatter.text(r.diagnostics))", sourceLocation: sourceLocation)
    return r.snapshot
}
