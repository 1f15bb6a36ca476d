import Foundation
import ProxConfig
import ProxMain
import Testing

@Suite struct ExampleConfigTests {
    static var exampleFiles: [String] {
        let dir = repoRoot.appendingPathComponent("configs")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }.sorted()
    }

    @Test func thereAreExamples() {
        #expect(Self.exampleFiles.contains("basic.yaml"))
        #expect(Self.exampleFiles.contains("multi-host.yaml"))
        #expect(Self.exampleFiles.contains("rewrite.yaml"))
    }

    @Test(arguments: exampleFiles)
    func compilesWithoutDiagnostics(_ name: String) throws {
        let path = repoRoot.appendingPathComponent("configs").appendingPathComponent(name).path
        // With the filters the shipped `prox` has: configs/ show the custom filters too.
        let r = ConfigCompiler.compile(file: path, version: 1, filters: try ProxMain.shippedFilters())
        #expect(r.diagnostics.isEmpty, "\(DiagnosticFormatter.text(r.diagnostics))")
        #expect(r.snapshot != nil)
    }

    @Test func defaultConfigCompiles() throws {
        let r = ConfigCompiler.compile(text: DefaultConfig.yaml, fileName: "<default>", version: 7)
        #expect(r.diagnostics.isEmpty, "\(DiagnosticFormatter.text(r.diagnostics))")
        let s = try #require(r.snapshot)
        #expect(s.version == 7)
        #expect(s.listeners.map { "\($0.host):\($0.port)" } == ["127.0.0.1:8080"])
        #expect(s.routes.map(\.id) == ["api", "echo", "old-docs", "home", "not-found"])
        #expect(s.pools.first?.endpoints.first?.address == "127.0.0.1:8080")
        #expect(s.routes[0].chain.stages.map(\.kind) == ["request_id", "headers", "rewrite"])
        #expect(s.routes[1].chain.stages.map(\.kind) == ["ip_access", "request_id"])
    }

    @Test(arguments: ["compare.yaml", "ext-filter.yaml"])
    func benchTemplateCompilesAfterSubstitution(_ name: String) throws {
        let url = repoRoot.appendingPathComponent("bench/\(name)")
        let template = try String(contentsOf: url, encoding: .utf8)
        let text = template.replacingOccurrences(of: "{port}", with: "18080")
            .replacingOccurrences(of: "{upstream}", with: "127.0.0.1:18081")
            .replacingOccurrences(of: "{threads}", with: "2")
        let r = ConfigCompiler.compile(text: text, fileName: "compare.yaml", version: 1)
        #expect(r.diagnostics.isEmpty, "\(DiagnosticFormatter.text(r.diagnostics))")
        #expect(r.snapshot?.listeners.first?.port == 18080)
        #expect(r.snapshot?.pools.first?.endpoints.first?.address == "127.0.0.1:18081")
        // Before substitution it is still YAML (the placeholders are in strings and comments).
        let before = ConfigCompiler.compile(text: template, fileName: "compare.yaml", version: 1)
        #expect(!before.diagnostics.contains { $0.message.contains("invalid YAML") })
    }
}
