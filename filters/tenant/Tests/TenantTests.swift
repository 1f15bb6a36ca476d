import ProxCore
import ProxFilterTesting
import Testing
@testable import ProxFilterTenant

@Suite struct TenantTests {
    static let bed = FilterTestbed([FilterDescriptor(TenantFactory.self)])

    static func snapshot(_ filter: String) throws -> Snapshot {
        let r = bed.compile(FilterTestbed.config(routes: """
          - id: r
            chain: [{tenant: \(filter)}]
            proxy: up
        """))
        return try #require(r.snapshot, "\(r.diagnostics)")
    }

    static let hosts = "{hosts: {acme.example.com: acme, Globex.example.com: globex}"
    static let regex = "{host_regex: '(?<tenant>[a-z0-9-]+)\\.saas\\.example\\.com'"

    /// (filter config, Host, request headers, tenant set upstream or nil, refusal status)
    @Test(arguments: [
        (hosts + "}", "acme.example.com", [], "acme", nil),
        (hosts + "}", "ACME.example.com:8443", [], "acme", nil),               // case and port do not matter
        (hosts + "}", "globex.example.com", [("X-Tenant", "acme")], "globex", nil),  // the client's X-Tenant is replaced
        (hosts + "}", "initech.example.com", [], nil, 421),
        (hosts + ", status: 404}", "initech.example.com", [], nil, 404),
        (hosts + ", allow_unknown: true, default_tenant: public}", "initech.example.com", [], "public", nil),
        (hosts + ", set_header: X-Org}", "acme.example.com", [], "acme", nil),
        (regex + "}", "umbrella.saas.example.com", [], "umbrella", nil),
        (regex + "}", "a.b.saas.example.com", [], nil, 421),                   // the whole host must match
        (regex + ", tenants: [umbrella]}", "hooli.saas.example.com", [], nil, 421),
        (regex + ", hosts: {umbrella.com: umbrella}}", "umbrella.com", [], "umbrella", nil),  // hosts first
        ("{header: X-Org-Id, tenants: [acme, globex]}", "x", [("X-Org-Id", "globex")], "globex", nil),
        ("{header: X-Org-Id, tenants: [acme, globex]}", "x", [("X-Org-Id", "hooli")], nil, 403),
        ("{header: X-Org-Id, tenants: [acme, globex]}", "x", [], nil, 403),
        ("{header: X-Org-Id}", "x", [("x-org-id", "any-team_1.2")], "any-team_1.2", nil),
        ("{header: X-Org-Id}", "x", [("X-Org-Id", "bad value")], nil, 403),
    ] as [(String, String, [(String, String)], String?, Int?)])
    func decides(_ filter: String, _ host: String, _ headers: [(String, String)], _ tenant: String?, _ status: Int?) throws {
        let s = try Self.snapshot(filter)
        let ctx = Self.bed.request(s, host: host, headers: headers)
        let (v, _) = Self.bed.run(ctx)
        let entry = try #require(ctx.trace?.entries.first)
        #expect(entry.stage == "tenant")
        let setHeader = filter.contains("X-Org}") ? "X-Org" : "X-Tenant"
        switch v {
        case .next:
            #expect(tenant != nil, "passed: \(entry)")
            #expect(ctx.head.fields.all(HeaderName(setHeader)) == [tenant ?? ""])
            #expect(entry.decided == "tenant \(tenant ?? ""), set \(setHeader): \(tenant ?? "")")
        case .respond(let r):
            #expect(r.status == status, "refused: \(entry)")
            #expect(r.category == "unknown_tenant")
            #expect(entry.decided == "refuse \(status ?? 0)")
        case .suspend:
            Issue.record("suspended")
        }
    }

    /// (filter config, error message, path)
    @Test(arguments: [
        ("{set_header: X-Tenant}", "no way to find the tenant", "routes[0].chain[0].tenant"),
        ("{host_regex: '[a-z]+\\.example\\.com'}", "the regex has no group named 'tenant'", "routes[0].chain[0].tenant.host_regex"),
        ("{host_regex: '(?<tenant>[a-z+\\.example\\.com'}", "", "routes[0].chain[0].tenant.host_regex"),
        ("{hosts: {a.example.com: 'two words'}}", "'two words' is not a tenant id", "routes[0].chain[0].tenant.hosts[\"a.example.com\"]"),
        ("{hosts: {a.example.com: a, A.example.com: b}}", "host 'A.example.com' is listed twice", "routes[0].chain[0].tenant.hosts[\"A.example.com\"]"),
        ("{hosts: {a.example.com: a}, allow_unknown: true}", "`allow_unknown: true` needs `default_tenant`", "routes[0].chain[0].tenant.allow_unknown"),
        ("{header: X-Org, hosts: {a.example.com: a}, tenants: [a]}", "", "routes[0].chain[0].tenant.hosts"),
        ("{header: 'X Org', tenants: [a]}", "'X Org' is not a valid header name", "routes[0].chain[0].tenant.header"),
        ("{hosts: {a.example.com: a}, status: 503}", "", "routes[0].chain[0].tenant.status"),
    ])
    func configErrors(_ filter: String, _ message: String, _ path: String) throws {
        let r = Self.bed.compile(FilterTestbed.config(routes: """
          - id: r
            chain: [{tenant: \(filter)}]
            proxy: up
        """))
        let e = try #require(r.errors.first, "no error for \(filter)")
        if !message.isEmpty { #expect(e.message == message) }
        #expect(e.path == path)
        #expect(e.mark.line == 10)
    }

    @Test func headerWithoutTenantsIsAWarning() throws {
        let r = Self.bed.compile(FilterTestbed.config(routes: """
          - id: r
            chain: [{tenant: {header: X-Org-Id}}]
            proxy: up
        """))
        #expect(r.snapshot != nil)
        #expect(r.diagnostics.map(\.message) == ["any value of X-Org-Id is accepted as a tenant id"])
    }
}
