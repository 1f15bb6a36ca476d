import Foundation
import ProxConfig
import ProxCore
import Testing

/// `prox validate` on `l4_routes` and `websocket`: each problem with its position and path.
@Suite struct L4ConfigTests {
    static func compile(l4: String, tls: Bool = true) throws -> CompileResult {
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "a", dns: ["a.test"])
        let yaml = """
        version: 1
        listeners:
          - id: edge
            address: 127.0.0.1:0
        \(tls ? "    tls: {certificates: [{cert: \(a.cert), key: \(a.key)}]}" : "    limits: {max_headers: 100}")
            l4_routes:
        \(l4)
        pools:
          - id: backend
            endpoints: [127.0.0.1:9443]
        routes:
          - id: all
            respond: {body: ok}
        """
        return ConfigCompiler.compile(text: yaml, fileName: "l4-test.yaml", version: 1)
    }

    static func errors(_ r: CompileResult) -> [Diagnostic] { r.diagnostics.filter { $0.severity == .error } }

    @Test func aValidTableCompiles() throws {
        let r = try Self.compile(l4: """
              - id: p
                sni: [Pass.Test, "*.wild.test"]
                pass: backend
                idle_timeout: 30s
              - id: d
                no_sni: true
                drop: true
        """)
        let s = try #require(r.snapshot, "\(DiagnosticFormatter.text(r.diagnostics))")
        #expect(r.diagnostics.isEmpty, "the pool is used by an l4 route: \(DiagnosticFormatter.text(r.diagnostics))")
        let table = try #require(s.listeners[0].l4)
        #expect(table.routes.map(\.id) == ["p", "d"])
        #expect(table.clientHelloTimeout == 5_000 && table.clientHelloMaxBytes == 16_384)
        #expect(table.routes[0].action == .pass(pool: 0) && table.routes[0].idleTimeout == 30_000)
        #expect(table.select("pass.test") == 0)
        #expect(table.select("a.wild.test") == 0)
        #expect(table.select("a.b.wild.test") == nil)
        #expect(table.select("wild.test") == nil)
        #expect(table.select(nil) == 1)
    }

    @Test func unknownPool() throws {
        let r = try Self.compile(l4: """
              - id: p
                sni: [pass.test]
                pass: backnd
        """)
        let e = try #require(Self.errors(r).first)
        #expect(Self.errors(r).count == 1)
        #expect(e.path == "listeners[0].l4_routes[0].pass")
        #expect(e.message == "unknown pool 'backnd'")
        #expect(e.hint == "did you mean 'backend'?")
        #expect(e.mark.line == 9)
    }

    @Test func onACleartextListener() throws {
        let r = try Self.compile(l4: """
              - id: p
                sni: [pass.test]
                drop: true
        """, tls: false)
        let e = try #require(Self.errors(r).first)
        #expect(e.path == "listeners[0].l4_routes")
        #expect(e.message == "l4_routes need a TLS listener")
    }

    @Test func badAndDuplicateNamesAndIds() throws {
        let r = try Self.compile(l4: """
              - id: p
                sni: [pass.test, "a.*.test", "pass.test:443"]
                drop: true
              - id: p
                sni: [PASS.test]
                drop: true
        """)
        let es = Self.errors(r)
        #expect(r.snapshot == nil)
        #expect(es.contains { $0.path == "listeners[0].l4_routes[0].sni[1]" && $0.message.contains("'a.*.test' is not a host name") })
        #expect(es.contains { $0.path == "listeners[0].l4_routes[0].sni[2]" })
        #expect(es.contains { $0.path == "listeners[0].l4_routes[1].id" && $0.message == "duplicate l4 route id 'p'" })
        #expect(es.contains { $0.path == "listeners[0].l4_routes[1].sni[0]" && $0.message == "SNI name 'pass.test' is already taken by l4 route 'p'" })
    }

    @Test func actionAndMatchAreRequired() throws {
        let both = try Self.compile(l4: """
              - id: p
                sni: [pass.test]
                pass: backend
                drop: true
        """)
        #expect(Self.errors(both).contains { $0.path.hasPrefix("listeners[0].l4_routes[0]") }, "\(DiagnosticFormatter.text(both.diagnostics))")
        #expect(both.snapshot == nil)
        let none = try Self.compile(l4: """
              - id: p
                pass: backend
        """)
        #expect(Self.errors(none).contains { $0.message.contains("needs `sni` names or `no_sni: true`") })
    }

    @Test func webSocketSettings() throws {
        func compile(_ ws: String) -> CompileResult {
            ConfigCompiler.compile(text: """
            version: 1
            listeners: [{id: main, address: 127.0.0.1:0}]
            pools: [{id: up, endpoints: [127.0.0.1:9001]}]
            routes:
              - id: r
            \(ws)
                proxy: up
            """, fileName: "ws.yaml", version: 1)
        }
        #expect(compile("").snapshot?.routes[0].webSocket == .default)
        #expect(compile("    websocket: false").snapshot?.routes[0].webSocket == WebSocketPolicy(enabled: false, idleTimeout: 60_000))
        #expect(compile("    websocket: {idle_timeout: 5m}").snapshot?.routes[0].webSocket == WebSocketPolicy(enabled: true, idleTimeout: 300_000))
        let bad = compile("    websocket: {idle_timeout: 5}")
        #expect(bad.snapshot == nil)
        #expect(bad.diagnostics.first?.path == "routes[0].websocket.idle_timeout")
        let typo = compile("    websockets: false")
        #expect(typo.diagnostics.first?.hint?.contains("websocket: false") == true)
    }
}
