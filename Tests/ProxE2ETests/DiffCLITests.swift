import Foundation
import Testing

/// `prox diff` as a user runs it: exit codes 0 / 1 / 2, JSON output, given requests.
@Suite struct DiffCLITests {
    static let golden = "Tests/Golden/diff"

    @Test func exitCodes() throws {
        let same = try CLITests.prox(["diff", "\(Self.golden)/cosmetic/old.yaml", "\(Self.golden)/cosmetic/new.yaml"])
        #expect(same.status == 0, "\(same.out)\(same.err)")
        let changed = try CLITests.prox(["diff", "\(Self.golden)/shadow/old.yaml", "\(Self.golden)/shadow/new.yaml"])
        #expect(changed.status == 1, "\(changed.out)\(changed.err)")
        #expect(changed.out.contains("move from route `uploads` to route `uploads-paused`"))
        let missing = try CLITests.prox(["diff", "\(Self.golden)/shadow/old.yaml", "/nonexistent/new.yaml"])
        #expect(missing.status == 2)
        #expect(missing.err.contains("/nonexistent/new.yaml"))
        // An invalid config is invalid input, reported with its position.
        let bad = try CLITests.temp("bad.yaml", "version: 1\nlisteners: [{id: main, address: \"127.0.0.1:8080\"}]\nroutes:\n  - id: x\n    proxy: nowhere\n")
        let invalid = try CLITests.prox(["diff", "\(Self.golden)/shadow/old.yaml", bad])
        #expect(invalid.status == 2)
        #expect(invalid.err.contains("bad.yaml:5:"), "\(invalid.err)")
    }

    @Test func jsonOutput() throws {
        let r = try CLITests.prox(["diff", "--format", "json", "\(Self.golden)/rewrite/old.yaml", "\(Self.golden)/rewrite/new.yaml"])
        #expect(r.status == 1)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let behaviour = try #require(obj["behaviour"] as? [String: Any])
        #expect(behaviour["changed"] as? Int == 2)
        let structure = try #require(obj["structure"] as? [[String: Any]])
        #expect(structure.first?["id"] as? String == "api-v1")
    }

    /// Requests from a check file and from access-log lines join the corpus; with --given-only
    /// they are the whole corpus.
    @Test func givenRequests() throws {
        let checks = try CLITests.temp("reqs.yaml", """
        tests:
          - request: GET http://shop.example.com/api/v1/orders
            expect: {route: api-v1}
        """)
        let log = try CLITests.temp("access.log", """
        {"time":"2026-11-30T10:00:00.000Z","request_id":"a","client":"10.0.0.1","method":"GET","host":"shop.example.com","path":"/api/v1/items?id=3","route":"api-v1","status":200}
        not json
        {"time":"2026-11-30T10:00:00.000Z","request_id":"b","client":"10.0.0.1","method":"GET","host":"shop.example.com","path":"/pricing","route":"pricing","status":301}
        """)
        let r = try CLITests.prox(["diff", "--given-only", "--requests", checks, "--access-log", log,
                                   "\(Self.golden)/rewrite/old.yaml", "\(Self.golden)/rewrite/new.yaml"])
        #expect(r.status == 1, "\(r.out)\(r.err)")
        #expect(r.out.contains("2 of 3 requests change outcome"), "\(r.out)")
        #expect(r.out.contains("GET /api/v1/items?id=3 (Host: shop.example.com) -> GET /v1/api/v1/items?id=3") == false)
        #expect(r.out.contains("-> GET /v1/orders (Host: shop.example.com)"), "\(r.out)")
        #expect(r.err.contains("skipped 1 line"))
    }
}
