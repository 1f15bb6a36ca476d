import Foundation
import ProxConfig
import Testing

/// Issue 8, item 5: a duplicate key is one diagnostic among the others, at its second
/// occurrence with its config path; a truncated file is reported where it ends.
@Suite struct YAMLDuplicateKeyTests {
    @Test func duplicateKeyIsReportedAtTheSecondOccurrenceBesideOtherErrors() {
        let r = compile("""
        version: 1
        listeners:
          - id: main
            address: 127.0.0.1:8080
            id: other
        routes:
          - id: r
            respond: {status: 2000}
        """)
        let text = DiagnosticFormatter.text(r.diagnostics)
        #expect(r.diagnostics.count == 2, "\(text)")
        let dup = r.diagnostics.first { $0.message.contains("duplicate key") }
        #expect(dup.map { "\($0.line):\($0.column)" } == "5:5", "\(text)")
        #expect(dup?.path == "listeners[0].id")
        #expect(dup?.hint?.contains("line 3, column 5") == true, "\(text)")
        #expect(r.diagnostics.contains { $0.path == "routes[0].respond.status" }, "the other error is still found: \(text)")
        #expect(r.snapshot == nil)
    }

    @Test func duplicateKeysInFlowMappingsAndSeveralAtOnce() {
        let r = compile("""
        version: 1
        listeners: [{id: main, address: "127.0.0.1:8080", id: again}]
        routes:
          - id: r
            respond: {status: 200, body: a, body: b}
            respond: {status: 201}
        """)
        let text = DiagnosticFormatter.text(r.diagnostics)
        let dups = r.diagnostics.filter { $0.message.contains("duplicate key") }.map { "\($0.line):\($0.column) \($0.path)" }
        #expect(dups == ["2:51 listeners[0].id", "5:37 routes[0].respond.body", "6:5 routes[0].respond"], "\(text)")
    }

    @Test func theFirstValueIsKept() {
        let r = compile(preludeNoPools + """
        routes:
          - id: r
            respond: {status: 200}
            id: s
        """)
        #expect(r.diagnostics.count == 1)
        #expect(r.diagnostics.first?.path == "routes[0].id")
    }

    /// Keys are compared by their text (Yams compared them with their YAML 1.1 tags, so `1` and
    /// `"1"`, or `off` and `"off"`, were two keys); an alias as a key is a key like any other.
    @Test func keysWithTheSameTextAreRepeats() {
        let (_, diags) = ConfigLoader.load(text: "m:\n  1: a\n  \"1\": b\n  off: c\n  'off': d\nk: &k x\nn: {x: 1, *k : 2}\n", fileName: "t.yaml")
        let dups = diags.filter { $0.message.hasPrefix("duplicate key") }.map { "\($0.line):\($0.column) \($0.path)" }
        #expect(dups == ["3:3 m.1", "5:3 m.off", "7:11 n.x"], "\(diags)")
    }

    @Test func truncatedFlowListIsReportedWhereTheFileEnds() {
        let r = compile("version: 1\nlisteners:\n  - id: main\n    address: [\n")
        let d = r.diagnostics.first
        #expect(r.diagnostics.count == 1)
        #expect(d.map { "\($0.line):\($0.column)" } == "4:15", "\(DiagnosticFormatter.text(r.diagnostics))")
        #expect(d?.hint?.contains("the file ends") == true, "\(String(describing: d))")
    }
}
