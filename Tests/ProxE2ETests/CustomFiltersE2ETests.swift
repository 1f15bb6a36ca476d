import Foundation
import Testing

/// The custom filters of filters/ through the real proxy: real sockets, a real upstream.
@Suite(.serialized) struct CustomFiltersE2ETests {
    static let config = """
    version: 1
    server: { access_log: "off" }
    listeners:
      - id: main
        address: "127.0.0.1:0"
    pools:
      - id: backend
        endpoints: [{ address: "{upstream}" }]
    routes:
      - id: closed
        match: { path: { prefix: /closed } }
        chain:
          - maintenance: { windows: [{start: 2020-01-01T00:00:00Z, end: 2999-01-01T00:00:00Z}], body: "closed\\n" }
        proxy: backend
      - id: closed-but-staff
        match: { path: { prefix: /staff } }
        chain:
          - maintenance: { enabled: true, allow: [127.0.0.0/8], retry_after: 10m }
        proxy: backend
      - id: switched-off
        match: { path: { prefix: /switched } }
        chain:
          - maintenance: { enabled: true, allow: [10.0.0.0/8], retry_after: 10m }
        proxy: backend
      - id: tenants
        chain:
          - tenant:
              hosts: { acme.test: acme }
              host_regex: '(?<tenant>[a-z]+)\\.saas\\.test'
        proxy: backend
    """

    @Test func maintenanceRespondsAndLetsTheAllowListThrough() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(Self.config, upstream: up.address)
        defer { prox.stop() }

        let c = try prox.client()
        try c.send("GET /closed/x HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 503)
        #expect(r.text == "closed\n")
        #expect(r.header("x-prox-error") == "maintenance")
        let retry = try #require(r.header("retry-after").flatMap { Int($0) }, "Retry-After counts to the window's end")
        #expect(retry > 365 * 86_400)

        try c.send("GET /switched/x HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        let r2 = try c.readResponse()
        #expect(r2.status == 503)
        #expect(r2.header("retry-after") == "600")

        try c.send("GET /staff/x HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        let r3 = try c.readResponse()
        #expect(r3.status == 200, "127.0.0.1 is in allow")
        #expect(r3.text.contains("target=/staff/x\n"))
    }

    @Test func tenantTagsTheUpstreamRequestAndRefusesUnknownHosts() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(Self.config, upstream: up.address)
        defer { prox.stop() }

        let c = try prox.client()
        try c.send("GET /a HTTP/1.1\r\nHost: acme.test\r\nX-Tenant: evil\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 200)
        #expect(r.text.contains("h:x-tenant=acme\n"))
        #expect(!r.text.contains("evil"), "the client's X-Tenant does not reach the upstream")

        try c.send("GET /b HTTP/1.1\r\nHost: globex.saas.test:8080\r\n\r\n")
        let r2 = try c.readResponse()
        #expect(r2.status == 200)
        #expect(r2.text.contains("h:x-tenant=globex\n"))

        let c2 = try prox.client()
        try c2.send("GET /c HTTP/1.1\r\nHost: nobody.example\r\n\r\n")
        let r3 = try c2.readResponse()
        #expect(r3.status == 421)
        #expect(r3.header("x-prox-error") == "unknown_tenant")
        #expect(up.requests.withLockedValue { $0 } == 2)
    }
}
