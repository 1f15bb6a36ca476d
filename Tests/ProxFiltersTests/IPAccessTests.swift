import ProxConfig
import ProxCore
import ProxFilters
import Testing

@Suite struct IPAccessTests {
    /// (filter config, client, allowed)
    @Test(arguments: [
        ("{allow: [10.0.0.0/8]}", "10.2.3.4", true),
        ("{allow: [10.0.0.0/8]}", "11.0.0.1", false),
        ("{allow: [10.0.0.0/8, 192.168.1.7]}", "192.168.1.7", true),
        ("{allow: [10.0.0.0/8, 192.168.1.7]}", "192.168.1.8", false),
        ("{deny: [10.0.0.0/8]}", "10.9.9.9", false),
        ("{deny: [10.0.0.0/8]}", "8.8.8.8", true),
        ("{allow: [10.0.0.0/8], deny: [10.1.0.0/16]}", "10.1.2.3", false),
        ("{allow: [10.0.0.0/8], deny: [10.1.0.0/16]}", "10.2.2.3", true),
        ("{allow: [10.1.2.3], deny: [10.1.2.3]}", "10.1.2.3", false),
        ("{allow: [\"2001:db8::/32\"]}", "2001:db8::1", true),
        ("{allow: [\"2001:db8::/32\"]}", "2001:db9::1", false),
        ("{allow: [127.0.0.1]}", "::ffff:127.0.0.1", true),
        ("{allow: [\"::1\"]}", "127.0.0.1", false),
        ("{deny: [0.0.0.0/0]}", "::1", true),
    ])
    func decides(_ filter: String, _ client: String, _ allowed: Bool) throws {
        let s = try #require(snapshot(config("""
          - id: r
            chain: [{ip_access: \(filter)}]
            proxy: up
        """)))
        let ctx = request(s, client: client)
        let (v, _) = runRequest(ctx)
        if allowed {
            #expect(v.isNext)
        } else {
            let r = try #require(v.local)
            #expect(r.status == 403)
            #expect(r.category == "ip_denied")
            #expect(r.body.contains("ip_denied"))
        }
        let e = try #require(ctx.trace?.entries.first)
        #expect(e.stage == "ip_access")
        #expect(e.decided == (allowed ? "allow" : "refuse 403"))
    }

    @Test func configErrors() {
        var errs = errors(config("""
          - id: r
            chain: [{ip_access: {allow: []}}]
            proxy: up
        """))
        #expect(errs.map(\.message) == ["allows everyone"])
        errs = errors(config("""
          - id: r
            chain: [ip_access]
            proxy: up
        """))
        #expect(errs.map(\.message) == ["filter 'ip_access' needs settings"])
        errs = errors(config("""
          - id: r
            chain: [{ip_access: {deny: [10.0.0.0/8, "10.0.0.300"]}}]
            proxy: up
        """))
        #expect(errs.map(\.path) == ["routes[0].chain[0].ip_access.deny[1]"])
    }

    @Test func hostBitsAreAWarning() {
        let r = ConfigCompiler.compile(text: config("""
          - id: r
            chain: [{ip_access: {allow: [10.1.2.3/8]}}]
            proxy: up
        """), fileName: "f.yaml", version: 1)
        #expect(r.diagnostics.map(\.severity) == [.warning])
        #expect(r.diagnostics.first?.message == "'10.1.2.3/8' has bits set after the prefix; it means 10.0.0.0/8")
        #expect(r.snapshot != nil)
    }
}
