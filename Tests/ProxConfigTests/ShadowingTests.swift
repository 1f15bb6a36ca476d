import ProxConfig
import Testing

@Suite struct ShadowingTests {
    @Test func routeAfterCatchAll() {
        expectOne(prelude + """
        routes:
          - id: everything
            proxy: api
          - id: health
            match: {path: {exact: /healthz}}
            respond: {}
        """, "11:5", "routes[1]",
        "route 'health' can never match: route 'everything' (routes[0], line 9) comes first and matches every request it would",
        hint: "'everything' has no conditions, so it takes every request; put it last")
    }

    @Test func prefixShadowsLongerPrefix() {
        expectOne(prelude + """
        routes:
          - id: api
            match: {path: {prefix: /api/}}
            proxy: api
          - id: api-users
            match: {path: {prefix: /api/users/}, methods: [GET]}
            proxy: api
          - id: other
            match: {path: {prefix: /other/}}
            proxy: api
        """, "12:5", "routes[1]", "route 'api-users' can never match: route 'api' (routes[0], line 9)",
        hint: "move 'api-users' before 'api', or make 'api' narrower")
    }

    /// Each pair: (earlier match, later match, shadowed?).
    @Test(arguments: [
        ("{path: {prefix: /a}}", "{path: {exact: /abc}}", true),
        ("{path: {exact: /a}}", "{path: {exact: /a}}", true),
        ("{path: {exact: /a}}", "{path: {prefix: /a}}", false),
        ("{path: {prefix: /a/b}}", "{path: {prefix: /a}}", false),
        ("{path: {regex: \"^/x\"}}", "{path: {regex: \"^/x\"}}", true),
        ("{path: {regex: \"^/x\"}}", "{path: {regex: \"^/x/y\"}}", false),
        ("{path: {regex: \"^/x\"}}", "{path: {exact: /xyz}}", true),
        ("{path: {regex: \"^/x\"}}", "{path: {prefix: /x}}", false),
        ("{host: \"*.example.com\"}", "{host: a.example.com}", true),
        ("{host: \"*.example.com\"}", "{host: example.com}", false),
        ("{host: \"*.example.com\"}", "{host: \"*.b.example.com\"}", true),
        ("{host: [a.com, b.com]}", "{host: b.com, path: {prefix: /}}", true),
        ("{host: a.com}", "{path: {prefix: /}}", false),
        ("{host: {regex: \"[a-z]+\\\\.com\"}}", "{host: abc.com}", true),
        ("{methods: [GET, POST]}", "{methods: [GET]}", true),
        ("{methods: [GET]}", "{methods: [GET, POST]}", false),
        ("{methods: [GET]}", "{path: {prefix: /}}", false),
        ("{headers: {X-A: {present: true}}}", "{headers: {X-A: \"1\", X-B: \"2\"}}", true),
        ("{headers: {X-A: \"1\"}}", "{headers: {x-a: \"1\"}}", true),
        ("{headers: {X-A: \"1\"}}", "{headers: {X-A: \"2\"}}", false),
        ("{headers: {X-A: \"1\"}}", "{query: {X-A: \"1\"}}", false),
        ("{cookies: {beta: {regex: \"^1$\"}}}", "{cookies: {beta: \"1\"}}", true),
        ("{query: {v: {absent: true}}}", "{query: {v: {absent: true}}, methods: [GET]}", true),
    ])
    func covers(_ a: String, _ b: String, _ shadowed: Bool) {
        let r = compile(prelude + """
        routes:
          - id: first
            match: \(a)
            proxy: api
          - id: second
            match: \(b)
            proxy: api
        """)
        let shadow = r.diagnostics.filter { $0.message.contains("can never match") }
        #expect(shadow.count == (shadowed ? 1 : 0), "\(a) vs \(b): \(DiagnosticFormatter.text(r.diagnostics))")
        #expect(r.diagnostics.count == shadow.count, "\(DiagnosticFormatter.text(r.diagnostics))")
    }

    @Test func listeners() {
        let yaml = """
        version: 1
        listeners:
          - {id: a, address: "127.0.0.1:8080"}
          - {id: b, address: "127.0.0.1:8081"}
        routes:
          - id: only-a
            listeners: [a]
            respond: {}
          - id: on-b
            listeners: [b]
            respond: {}
          - id: on-both
            respond: {}
          - id: on-a-again
            listeners: [a]
            respond: {}
        """
        let r = compile(yaml)
        let shadow = r.diagnostics.filter { $0.message.contains("can never match") }
        #expect(shadow.count == 1)
        #expect(shadow.first?.path == "routes[3]")
        #expect(shadow.first?.message.contains("route 'only-a'") == true)
    }

    @Test func errorsOutsideTheMatchDoNotHideShadowing() {
        // The catch-all's pool is misspelt; its match is fine, so the route after it is still judged.
        let r = compile(prelude + """
        routes:
          - id: all
            proxy: apii
          - id: later
            match: {path: {prefix: /x}}
            respond: {}
        """)
        #expect(r.errors.map(\.path) == ["routes[0].proxy", "routes[1]"])
    }

    @Test func routesWithErrorsAreNotJudged() {
        // The first route's host is invalid: it must not look like a catch-all.
        let r = compile(prelude + """
        routes:
          - id: first
            match: {host: "bad host"}
            proxy: api
          - id: second
            match: {path: {prefix: /}}
            proxy: api
        """)
        #expect(r.errors.count == 1)
        #expect(!r.diagnostics.contains { $0.message.contains("can never match") })
    }
}
