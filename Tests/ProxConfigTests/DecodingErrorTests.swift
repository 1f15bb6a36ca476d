import ProxConfig
import Testing

/// Each kind of mistake, with its exact position and path. Line numbers count from the top of
/// each config (the prelude is 7 lines, `routes:` is line 8).
@Suite struct DecodingErrorTests {
    @Test func wrongType() {
        expectOne(prelude + """
        routes:
          - id: r
            match:
              methods: GET
            respond: {}
        """, "11:16", "routes[0].match.methods", "expected a list, found a string")
    }

    @Test func integerForString() {
        expectOne(prelude + """
        routes:
          - id: r
            respond: {body: 42}
        """, "10:21", "routes[0].respond.body", "expected a string, found an integer (42)", hint: "quote it")
    }

    @Test func missingRequiredKey() {
        expectOne("""
        version: 1
        listeners:
          - id: main
        routes: []
        """, "3:5", "listeners[0]", "missing required key 'address'")
    }

    @Test func missingRequiredTopLevel() {
        expectOne("""
        version: 1
        routes: []
        """, "1:1", "", "missing required key 'listeners'")
    }

    @Test func unknownKeyWithDidYouMean() {
        expectOne(prelude + """
        routes:
          - id: r
            match:
              pth: {prefix: /}
            respond: {}
        """, "11:7", "routes[0].match.pth", "unknown key 'pth'", hint: "did you mean 'path'?")
    }

    @Test func unknownKeyThatBelongsElsewhere() {
        expectOne(prelude + """
        routes:
          - id: r
            path: {prefix: /}
            respond: {}
        """, "10:5", "routes[0].path", "unknown key 'path'", hint: "goes under `match:`")
    }

    @Test func badEnum() {
        expectOne("""
        version: 1
        listeners: [{id: main, address: "127.0.0.1:80"}]
        pools:
          - id: api
            endpoints: [127.0.0.1:9000]
            balancer: least_requests
        routes: [{id: r, proxy: api}]
        """, "6:15", "pools[0].balancer", "'least_requests' is not one of", hint: "did you mean 'least_request'?")
    }

    @Test func outOfRange() {
        expectOne("""
        version: 1
        listeners:
          - id: main
            address: 127.0.0.1:8080
            limits: {max_headers: 0}
        routes: []
        """, "5:27", "listeners[0].limits.max_headers", "0 is out of range: must be between 1 and 10000")
    }

    @Test func sizeOutOfRange() {
        expectOne("""
        version: 1
        listeners:
          - id: main
            address: 127.0.0.1:8080
            limits:
              max_header_bytes: 2MiB
        routes: []
        """, "6:25", "listeners[0].limits.max_header_bytes", "2MiB is out of range: must be between 1KiB and 1MiB")
    }

    @Test func badDuration() {
        expectOne("""
        version: 1
        listeners:
          - id: main
            address: 127.0.0.1:8080
            timeouts: {client_header: 5 seconds}
        routes: []
        """, "5:31", "listeners[0].timeouts.client_header", "'5 seconds' is not a duration", hint: "500ms, 5s")
    }

    @Test func durationWithoutUnit() {
        expectOne("""
        version: 1
        server: {drain_timeout: 30}
        listeners: [{id: main, address: "127.0.0.1:80"}]
        routes: []
        """, "2:25", "server.drain_timeout", "30 has no unit", hint: "30ms or 30s")
    }

    @Test func badSize() {
        expectOne(prelude + """
        routes:
          - id: r
            chain:
              - body_limit: {max_bytes: 10 megabytes}
            respond: {}
        """, "11:33", "routes[0].chain[0].body_limit.max_bytes", "'10 megabytes' is not a size")
    }

    @Test func badAddress() {
        expectOne("""
        version: 1
        listeners:
          - id: main
            address: "::1:8080"
        routes: []
        """, "4:14", "listeners[0].address", "invalid address: '::1:8080' is ambiguous", hint: "[::1]:8080")
    }

    @Test func addressWithoutPort() {
        expectOne("""
        version: 1
        listeners: [{id: main, address: "127.0.0.1:80"}]
        pools:
          - id: api
            endpoints: [10.0.0.1]
        routes: [{id: r, proxy: api}]
        """, "5:17", "pools[0].endpoints[0]", "'10.0.0.1' has no port")
    }

    @Test func listenerOnHostName() {
        expectOne("""
        version: 1
        listeners:
          - id: main
            address: example.com:80
        routes: []
        """, "4:14", "listeners[0].address", "'example.com' is not an IP address")
    }

    @Test func badCIDR() {
        expectOne(prelude + """
        routes:
          - id: r
            chain:
              - ip_access: {allow: [10.0.0.0/33]}
            respond: {}
        """, "11:29", "routes[0].chain[0].ip_access.allow[0]", "'10.0.0.0/33' is not an IP address or CIDR block")
    }

    @Test func badRegexPointsAtTheOffset() {
        // "^/users/(?<id>[0-9]+" misses a ')': PCRE2 stops at the end, offset 20.
        expectOne(prelude + """
        routes:
          - id: r
            match:
              path: {regex: "^/users/(?<id>[0-9]+"}
            respond: {}
        """, "11:42", "routes[0].match.path.regex", "invalid regex: missing closing parenthesis at offset 20")
    }

    @Test func badRegexInPlainScalar() {
        // PCRE2 stops at offset 7 of `^/a/[z-a]` (the end of the bad range); the plain scalar
        // starts at column 16.
        expectOne(prelude + """
        routes:
          - id: r
            match:
              path:
                regex: ^/a/[z-a]
            respond: {}
        """, "12:23", "routes[0].match.path.regex", "range out of order in character class at offset 7")
    }

    @Test func badTemplate() {
        expectOne(prelude + """
        routes:
          - id: r
            respond:
              body: "hello {hots}"
        """, "11:20", "routes[0].respond.body", "unknown variable {hots} (did you mean {host}?)")
    }

    @Test func templateCaptureWithoutRegex() {
        expectOne(prelude + """
        routes:
          - id: r
            match: {path: {prefix: /a/}}
            redirect: "/b/{path.1}"
        """, "11:19", "routes[0].redirect", "{path.1} needs the route to match the path with a regex")
    }

    @Test func templateUnknownNamedGroup() {
        expectOne(prelude + """
        routes:
          - id: r
            match: {path: {regex: "^/u/(?<id>[0-9]+)"}}
            redirect: "/users/{path.uid}"
        """, "11:23", "routes[0].redirect", "has no group named 'uid'")
    }

    @Test func badReplacement() {
        expectOne(prelude + """
        routes:
          - id: r
            rewrite:
              path_regex: "^/a/([0-9]+)"
              path_replacement: "/b/$2"
            proxy: api
        """, "12:29", "routes[0].rewrite.path_replacement", "group $2 does not exist")
    }

    @Test func danglingPool() {
        expectOne(prelude + """
        routes:
          - id: r
            proxy: api2
        """, "10:12", "routes[0].proxy", "unknown pool 'api2'", hint: "did you mean 'api'?")
    }

    @Test func danglingChain() {
        expectOne(prelude + """
        chains:
          common: [request_id]
        routes:
          - id: r
            chain: comon
            proxy: api
        """, "12:12", "routes[0].chain", "unknown chain 'comon'", hint: "did you mean 'common'?")
    }

    @Test func danglingListener() {
        expectOne(prelude + """
        routes:
          - id: r
            listeners: [mian]
            proxy: api
        """, "10:17", "routes[0].listeners[0]", "unknown listener 'mian'", hint: "did you mean 'main'?")
    }

    @Test func unknownFilter() {
        expectOne(prelude + """
        routes:
          - id: r
            chain:
              - request-id: {}
            proxy: api
        """, "11:9", "routes[0].chain[0].request-id", "unknown filter 'request-id'", hint: "did you mean 'request_id'?")
    }

    @Test func duplicateIDs() {
        expectOne(prelude + """
        routes:
          - id: r
            match: {path: {prefix: /a}}
            proxy: api
          - id: r
            match: {path: {prefix: /b}}
            proxy: api
        """, "12:9", "routes[1].id", "duplicate route id 'r'", hint: "first defined at line 9")
    }

    @Test func duplicateYAMLKey() {
        expectOne(prelude + """
        routes:
          - id: r
            proxy: api
            proxy: api
        """, "11:5", "routes[0].proxy", "duplicate key 'proxy'", hint: "first written at line 10, column 5")
    }

    @Test func twoActions() {
        expectOne(prelude + """
        routes:
          - id: r
            proxy: api
            respond: {}
        """, "11:5", "routes[0].respond", "'respond' cannot be used together with 'proxy'")
    }

    @Test func noAction() {
        expectOne(prelude + """
        routes:
          - id: r
            match: {path: {prefix: /}}
        """, "9:5", "routes[0]", "needs one of 'proxy', 'respond', 'redirect'")
    }

    @Test func replacePrefixNeedsAPrefixMatch() {
        expectOne(prelude + """
        routes:
          - id: r
            match: {path: {exact: /a}}
            rewrite: {replace_prefix: /b}
            proxy: api
        """, "11:31", "routes[0].rewrite.replace_prefix", "replace_prefix needs the route to match a path prefix")
    }

    @Test func invalidYAML() {
        expectOne("""
        version: 1
        listeners:
          - id: main
           address: x
        """, "4:4", "", "invalid YAML")
    }

    @Test func emptyDocument() {
        expectOne("# nothing\n", "1:1", "", "the document is empty")
    }

    @Test func listenersOverlap() {
        expectOne("""
        version: 1
        listeners:
          - {id: a, address: "0.0.0.0:8080"}
          - {id: b, address: "127.0.0.1:8080"}
        routes: []
        """, "4:22", "listeners[1].address", "overlaps listener 'a'")
    }

    @Test func unusedPoolIsAWarning() {
        let r = compile(prelude + "routes: [{id: r, respond: {}}]\n")
        #expect(r.diagnostics.count == 1)
        #expect(r.diagnostics.first?.severity == .warning)
        #expect(r.diagnostics.first?.message == "pool 'api' is not used by any route")
        #expect(r.snapshot != nil)
    }

    @Test func manyErrorsAtOnce() {
        let r = compile("""
        version: 1
        listeners:
          - id: main
            address: 127.0.0.1:99999
          - id: main
            adress: ":8080"
        pools:
          - id: api
            endpoints: [127.0.0.1]
            balancer: round_robbin
        routes:
          - id: a
            match: {path: {regex: "("}}
            proxy: apii
          - id: b
            respond: {status: 700}
        """)
        let text = DiagnosticFormatter.text(r.diagnostics)
        let expected = [
            "t.yaml:4:14: error: listeners[0].address: invalid address: '99999' is not a port number (0 to 65535)",
            "t.yaml:5:5: error: listeners[1]: missing required key 'address'",
            "t.yaml:5:9: error: listeners[1].id: duplicate listener id 'main'",
            "t.yaml:6:5: error: listeners[1].adress: unknown key 'adress'",
            "t.yaml:9:17: error: pools[0].endpoints[0]: invalid address: '127.0.0.1' has no port",
            "t.yaml:10:15: error: pools[0].balancer: 'round_robbin' is not one of round_robin, weighted_round_robin, random, least_request",
            "t.yaml:13:29: error: routes[0].match.path.regex: invalid regex: missing closing parenthesis at offset 1",
            "t.yaml:14:12: error: routes[0].proxy: unknown pool 'apii'",
            "t.yaml:16:23: error: routes[1].respond.status: 700 is out of range: must be between 200 and 599",
        ]
        for e in expected { #expect(text.contains(e), "missing: \(e)\nin:\n\(text)") }
        #expect(r.errors.count == expected.count, "\(text)")
        #expect(r.snapshot == nil)
        #expect(!r.unreadable)
    }

    @Test func unreadableFile() {
        let r = ConfigCompiler.compile(file: "/nonexistent/prox.yaml", version: 1)
        #expect(r.unreadable)
        #expect(r.snapshot == nil)
        #expect(r.diagnostics.first?.description == "/nonexistent/prox.yaml: error: cannot read the file: no such file")
    }

    @Test func diagnosticDescription() {
        let d = Diagnostic(file: "p.yaml", line: 3, column: 7, path: "routes[3].match.path.regex", message: "bad", hint: "try this")
        #expect(d.description == "p.yaml:3:7: error: routes[3].match.path.regex: bad\n  hint: try this")
    }
}
