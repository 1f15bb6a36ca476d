import ProxConfig
import ProxCore
import Testing

@Suite struct CompilerTests {
    @Test func listenerDefaultsAndOverrides() throws {
        let s = try #require(valid("""
        version: 1
        server: {trusted_proxies: [10.0.0.0/8], name: edge, access_log: "off", drain_timeout: 1m30s}
        listeners:
          - id: a
            address: ":8080"
          - id: b
            address: "[::1]:0"
            limits: {max_header_bytes: 64KiB, max_headers: 50, max_connections: 10, max_uri_bytes: 4096}
            timeouts: {client_header: 500ms, client_body_idle: 2s, keep_alive_idle: 1h}
            trusted_proxies: [192.168.0.0/16]
        routes: []
        """))
        let a = s.listeners[0], b = s.listeners[1]
        #expect(a.host == "0.0.0.0" && a.port == 8080)
        #expect(a.maxHeaderBytes == 32 * 1024 && a.maxHeaders == 100 && a.maxConnections == 10_000 && a.maxURIBytes == 8192)
        #expect(a.clientHeaderTimeout == 10_000 && a.clientBodyIdleTimeout == 30_000 && a.keepAliveIdleTimeout == 60_000)
        #expect(a.trustedProxies.map(\.description) == ["10.0.0.0/8"])
        #expect(b.host == "::1" && b.port == 0 && b.index == 1)
        #expect(b.maxHeaderBytes == 65536 && b.maxHeaders == 50 && b.maxConnections == 10 && b.maxURIBytes == 4096)
        #expect(b.clientHeaderTimeout == 500 && b.clientBodyIdleTimeout == 2000 && b.keepAliveIdleTimeout == 3_600_000)
        #expect(b.trustedProxies.map(\.description) == ["192.168.0.0/16"])
        #expect(s.settings.serverName == "edge" && s.settings.accessLog == "off" && s.settings.drainTimeout == 90_000)
    }

    @Test func pools() throws {
        let s = try #require(valid("""
        version: 1
        listeners: [{id: m, address: ":80"}]
        pools:
          - id: p
            endpoints: [10.0.0.1:80, {address: "backend.local:8080", weight: 5}, "[2001:db8::1]:443"]
            balancer: weighted_round_robin
            timeouts: {connect: 250ms, response_header: 3s, body_idle: 4s, idle: 5s}
            limits: {max_connections_per_endpoint: 8, max_idle_per_endpoint: 2}
        routes: [{id: r, proxy: p}]
        """))
        let p = s.pools[0]
        #expect(p.endpoints.map(\.address) == ["10.0.0.1:80", "backend.local:8080", "[2001:db8::1]:443"])
        #expect(p.endpoints.map(\.weight) == [1, 5, 1])
        #expect(p.balancer == .weightedRoundRobin)
        #expect(p.connectTimeout == 250 && p.responseHeaderTimeout == 3000 && p.bodyIdleTimeout == 4000 && p.idleTimeout == 5000)
        #expect(p.maxConnectionsPerEndpoint == 8 && p.maxIdlePerEndpoint == 2)
        guard case .proxy(let i) = s.routes[0].action else { Issue.record("not proxy"); return }
        #expect(i == 0)
    }

    @Test func matchSpec() throws {
        let s = try #require(valid(preludeNoPools + """
        routes:
          - id: r
            listeners: [main]
            match:
              host: [API.Example.com, "*.example.org", {regex: "(?<t>[a-z]+)\\\\.apps\\\\.test"}]
              path: {regex: "/v(?<v>[0-9])/"}
              methods: [GET, PATCH]
              headers: {X-Env: prod, X-Debug: {absent: true}}
              query: {page: {regex: "^[0-9]+$"}}
              cookies: {beta: {present: true}}
            rewrite: {host: "{host.t}.internal"}
            respond: {body: "v{path.v}"}
        """))
        let r = s.routes[0]
        let m = r.match
        #expect(m.listeners == [0])
        #expect(m.hosts.map(\.description) == ["api.example.com", "*.example.org", "~^(?:(?<t>[a-z]+)\\.apps\\.test)\\z"])
        #expect(m.hosts[2].matches("acme.apps.test"))
        #expect(!m.hosts[2].matches("acme.apps.test.evil"))
        #expect(m.hosts[1].matches("a.example.org") && !m.hosts[1].matches("example.org"))
        // Path regexes search, unanchored.
        #expect(m.path?.matches("/api/v2/x") == true)
        #expect(m.methods == [.get, .patch])
        #expect(m.predicates.map(\.description) == ["header X-Env = \"prod\"", "header X-Debug absent", "query page ~ ^[0-9]+$", "cookie beta present"])
        #expect(r.needsPathCaptures && r.needsHostCaptures)
        #expect(r.origin == "t.yaml:6:5")
        #expect(r.chain.stages.map(\.kind) == ["rewrite"])
        guard case .respond(let status, let headers, let body) = r.action else { Issue.record("not respond"); return }
        #expect(status == 200)
        #expect(headers.map(\.name.name) == ["Content-Type"])
        #expect(body.source == "v{path.v}")
    }

    @Test func respondWithoutBodyHasNoContentType() throws {
        let s = try #require(valid("""
        version: 1
        listeners: [{id: m, address: ":80"}]
        routes:
          - id: r
            respond: {status: 204, headers: {X-A: "{request_id}"}}
        """))
        guard case .respond(let status, let headers, let body) = s.routes[0].action else { Issue.record("not respond"); return }
        #expect(status == 204 && headers.map(\.name.name) == ["X-A"] && body.constant == "")
    }

    @Test func redirect() throws {
        let s = try #require(valid("""
        version: 1
        listeners: [{id: m, address: ":80"}]
        routes:
          - id: a
            match: {path: {exact: /a}}
            redirect: /b
          - id: r
            redirect: {status: 308, location: "https://{host}{target}"}
        """))
        guard case .redirect(let s0, let l0) = s.routes[0].action, case .redirect(let s1, let l1) = s.routes[1].action else {
            Issue.record("not redirects"); return
        }
        #expect(s0 == 302 && l0.source == "/b")
        #expect(s1 == 308 && l1.source == "https://{host}{target}")
        #expect(!s.routes[0].needsPathCaptures)
    }

    @Test func sharedChainIsBuiltPerRoute() throws {
        // The chain uses {path.1}: fine for the regex route, an error for the prefix route.
        let r = compile(prelude + """
        chains:
          tag:
            - headers: {request: {set: {X-Id: "{path.1}"}}}
        routes:
          - id: users
            match: {path: {regex: "^/users/([0-9]+)"}}
            chain: tag
            proxy: api
          - id: other
            match: {path: {prefix: /other/}}
            chain: tag
            proxy: api
        """)
        #expect(r.errors.count == 1)
        let d = try #require(r.errors.first)
        #expect(d.path == "chains.tag[0].headers.request.set.X-Id")
        #expect(d.hint == "chain 'tag' as used by route 'other'")
        #expect("\(d.line):\(d.column)" == "10:40")
    }

    @Test func unusedChainIsStillChecked() {
        let r = compile(prelude + """
        chains:
          spare:
            - headers: {response: {set: {X-A: "{hots}"}}}
        routes: [{id: r, proxy: api}]
        """)
        #expect(r.errors.count == 1)
        #expect(r.errors.first?.message.contains("unknown variable {hots}") == true)
    }

    @Test func filterBareNameAndNull() throws {
        let s = try #require(valid(prelude + """
        routes:
          - id: r
            chain:
              - request_id
              - request_id:
            proxy: api
        """))
        #expect(s.routes[0].chain.stages.map(\.kind) == ["request_id", "request_id"])
    }

    @Test func filterThatNeedsSettings() {
        expectOne(prelude + """
        routes:
          - id: r
            chain: [body_limit]
            proxy: api
        """, "10:13", "routes[0].chain[0]", "filter 'body_limit' needs settings")
    }

    @Test func twoFiltersInOneEntry() {
        expectOne(prelude + """
        routes:
          - id: r
            chain:
              - request_id: {}
                headers: {request: {remove: [X-A]}}
            proxy: api
        """, "12:9", "routes[0].chain[0].headers", "a chain entry holds one filter")
    }

    @Test func values() {
        #expect(DurationText.parse("1m30s") == 90_000)
        #expect(DurationText.parse("250ms") == 250)
        #expect(DurationText.parse("2h") == 7_200_000)
        #expect(DurationText.parse("5") == nil)
        #expect(DurationText.parse("5 s") == nil)
        #expect(DurationText.parse("s") == nil)
        #expect(DurationText.format(90_000) == "1m30s")
        #expect(DurationText.format(1500) == "1s500ms")
        #expect(SizeText.parse("64KiB") == 65536)
        #expect(SizeText.parse("10MB") == 10_000_000)
        #expect(SizeText.parse("1GiB") == 1 << 30)
        #expect(SizeText.parse("12") == nil)
        #expect(SizeText.parse("1.5MiB") == nil)
        #expect(SizeText.format(32768) == "32KiB")
        #expect(SizeText.format(1000) == "1000B")
        for (text, ok) in [("127.0.0.1:80", true), ("[::1]:80", true), (":80", true), ("localhost:80", true),
                           ("example.com:80", false), ("1.2.3:80", false), ("[::1]", false), ("127.0.0.1:65536", false)] {
            let r = HostPort.parse(text, allowNames: false, allowEmptyHost: true, allowPortZero: true)
            if case .success = r { #expect(ok, "\(text)") } else { #expect(!ok, "\(text)") }
        }
    }
}
