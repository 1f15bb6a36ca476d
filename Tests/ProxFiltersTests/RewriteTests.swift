import ProxConfig
import ProxCore
import ProxFilters
import Testing

@Suite struct RewriteTests {
    /// (route match and rewrite, request target, target sent upstream)
    @Test(arguments: [
        ("match: {path: {prefix: /api/}}\n    rewrite: {replace_prefix: /}", "/api/users?page=2", "/users?page=2"),
        ("match: {path: {prefix: /api/}}\n    rewrite: {replace_prefix: /v2/}", "/api/", "/v2/"),
        ("match: {path: {prefix: /api}}\n    rewrite: {replace_prefix: /}", "/api/users", "//users"),
        ("match: {path: {prefix: /old/}}\n    rewrite: {replace_prefix: /_upstream/}", "/old/a%20b?q=%2F", "/_upstream/a%20b?q=%2F"),
        ("rewrite: {path_regex: \"^/u/(?<id>[0-9]+)/(.*)$\", path_replacement: \"/users/${id}/$2\"}", "/u/42/posts?x", "/users/42/posts?x"),
        ("rewrite: {path_regex: \"^/u/([0-9]+)\", path_replacement: \"/users/$1\"}", "/v/42", "/v/42"),
        ("rewrite: {path_regex: \"x\", path_replacement: \"$$\"}", "/axb", "/a$b"),
    ])
    func paths(_ route: String, _ target: String, _ upstream: String) throws {
        let s = try #require(snapshot(config("""
          - id: r
            \(route)
            proxy: up
        """)))
        let ctx = request(s, .get, target)
        let (v, _) = runRequest(ctx)
        #expect(v.isNext)
        #expect(ctx.head.effectiveTarget == upstream)
        #expect(ctx.head.path == String(target.prefix { $0 != "?" }))
        #expect(ctx.trace?.entries.last?.stage == "rewrite")
    }

    @Test func hostFromRegexCapture() throws {
        let s = try #require(snapshot(config("""
          - id: tenant
            match:
              host: {regex: "(?<tenant>[a-z]+)\\\\.apps\\\\.example\\\\.com"}
            chain:
              - headers: {request: {set: {X-Tenant: "{host.tenant}"}}}
            rewrite: {host: "{host.tenant}.internal"}
            proxy: up
        """)))
        #expect(s.routes[0].needsHostCaptures)
        let ctx = request(s, headers: [("Host", "Acme.apps.example.com:8080")])
        let (v, ran) = runRequest(ctx)
        #expect(v.isNext && ran == 2)
        #expect(ctx.head.rewrittenHost == "acme.internal")
        #expect(ctx.head.header(HeaderName("X-Tenant")) == "acme")
        // The chain saw the path as received; rewrite runs last.
        #expect(s.routes[0].chain.stages.map(\.kind) == ["headers", "rewrite"])
    }

    @Test func configErrors() {
        var errs = errors(config("""
          - id: r
            rewrite: {}
            proxy: up
        """))
        #expect(errs.map(\.message) == ["rewrites nothing"])
        errs = errors(config("""
          - id: r
            rewrite: {path_replacement: /x}
            proxy: up
        """))
        #expect(errs.map(\.message) == ["'path_replacement' needs 'path_regex' too"])
        errs = errors(config("""
          - id: r
            match: {path: {prefix: /a/}}
            rewrite: {replace_prefix: b/}
            proxy: up
        """))
        #expect(errs.map(\.message) == ["paths start with '/'"])
        errs = errors(config("""
          - id: r
            rewrite: {path_regex: "(?<a>x)", path_replacement: "${b}"}
            proxy: up
        """))
        #expect(errs.map(\.message) == ["invalid replacement: no group named 'b' in the pattern (at offset 0)"])
    }
}
