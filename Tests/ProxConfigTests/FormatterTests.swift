import Foundation
import ProxConfig
import Testing

@Suite struct FormatterTests {
    let diagnostics = [
        Diagnostic(file: "b.yaml", line: 2, column: 1, path: "", severity: .warning, message: "w"),
        Diagnostic(file: "a.yaml", line: 9, column: 3, path: "routes[1].proxy", message: "unknown pool 'x'", hint: "did you mean 'y'?"),
        Diagnostic(file: "a.yaml", line: 4, column: 7, path: "listeners[0].address", message: "bad \"address\""),
    ]

    @Test func text() {
        #expect(DiagnosticFormatter.text(diagnostics) == """
        a.yaml:4:7: error: listeners[0].address: bad "address"
        a.yaml:9:3: error: routes[1].proxy: unknown pool 'x'
          hint: did you mean 'y'?
        b.yaml:2:1: warning: w
        """)
    }

    @Test func json() throws {
        let text = DiagnosticFormatter.json(diagnostics + [Diagnostic(file: "c.yaml", line: 0, column: 0, path: "", message: "cannot read the file: no such file")],
                                            files: ["a.yaml", "b.yaml", "c.yaml"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(obj["valid"] as? Bool == false)
        #expect(obj["errors"] as? Int == 3)
        #expect(obj["warnings"] as? Int == 1)
        let files = try #require(obj["files"] as? [[String: Any]])
        #expect(files.map { $0["valid"] as? Bool } == [false, true, false])
        #expect(files.map { $0["readable"] as? Bool } == [true, true, false])
        let items = try #require(obj["diagnostics"] as? [[String: Any]])
        #expect(items.count == 4)
        #expect(items[0]["path"] as? String == "listeners[0].address")
        #expect(items[0]["message"] as? String == "bad \"address\"")
        #expect(items[0]["line"] as? Int == 4 && items[0]["column"] as? Int == 7)
        #expect(items[1]["hint"] as? String == "did you mean 'y'?")
        #expect(items[0]["hint"] == nil)
        #expect(items[2]["severity"] as? String == "warning")
    }

    @Test func emptyIsValid() {
        #expect(DiagnosticFormatter.text([]) == "")
        #expect(DiagnosticFormatter.json([], files: ["a.yaml"]).contains("\"valid\": true"))
    }

    @Test func codable() throws {
        let d = diagnostics[1]
        let back = try JSONDecoder().decode(Diagnostic.self, from: JSONEncoder().encode(d))
        #expect(back == d)
    }
}
