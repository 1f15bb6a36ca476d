import ProxConfig
import ProxCore
import ProxFilters
import Testing

@Suite struct BodyLimitTests {
    /// (headers, refused with 413, body limit the engine will enforce)
    @Test(arguments: [
        ([("Content-Length", "1024")], false, Int64(1024)),
        ([("Content-Length", "1025")], true, Int64?.none),
        ([("Transfer-Encoding", "chunked")], false, Int64(1024)),
        ([], false, Int64(1024)),
    ] as [([(String, String)], Bool, Int64?)])
    func limits(_ headers: [(String, String)], _ refused: Bool, _ limit: Int64?) throws {
        let s = try #require(snapshot(config("""
          - id: r
            chain: [{body_limit: {max_bytes: 1KiB}}]
            proxy: up
        """)))
        let ctx = request(s, .post, "/upload", headers: headers)
        let (v, _) = runRequest(ctx)
        if refused {
            let r = try #require(v.local)
            #expect(r.status == 413)
            #expect(r.category == "body_too_large")
            #expect(!ctx.requestID.isEmpty && r.body.contains(ctx.requestID))
        } else {
            #expect(v.isNext)
        }
        #expect(ctx.requestBodyLimit == limit)
    }

    @Test func smallestLimitWins() throws {
        let s = try #require(snapshot(config("""
          - id: r
            chain:
              - body_limit: {max_bytes: 100}
              - body_limit: {max_bytes: 1MiB}
            proxy: up
        """)))
        let ctx = request(s, .post, "/", headers: [("Transfer-Encoding", "chunked")])
        _ = runRequest(ctx)
        #expect(ctx.requestBodyLimit == 100)
        #expect(ctx.trace?.entries.last?.why == "an earlier limit is smaller")
    }

    @Test(arguments: [
        ("{}", "routes[0].chain[0].body_limit", "missing required key 'max_bytes'"),
        ("{max_bytes: -1}", "routes[0].chain[0].body_limit.max_bytes", "out of range"),
        ("{max_bytes: 1.5MiB}", "routes[0].chain[0].body_limit.max_bytes", "not a size"),
        ("{max_bytes: [1]}", "routes[0].chain[0].body_limit.max_bytes", "expected a size, found a list"),
    ])
    func configErrors(_ filter: String, _ path: String, _ message: String) {
        let errs = errors(config("""
          - id: r
            chain: [{body_limit: \(filter)}]
            proxy: up
        """))
        #expect(errs.count == 1, "\(errs)")
        #expect(errs.first?.path == path)
        #expect(errs.first?.message.contains(message) == true, "\(errs)")
    }
}
