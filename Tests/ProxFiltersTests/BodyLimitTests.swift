import ProxConfig
import ProxCore
import ProxFilters
import Testing

@Suite struct BodyLimitTests {
    static let oneKiB = """
      - id: r
        chain: [{body_limit: {max_bytes: 1KiB}}]
        proxy: up
    """

    /// The request-head phase: (headers, refused with 413 at once, what the trace says it decided)
    @Test(arguments: [
        ([("Content-Length", "1024")], false, "pass"),
        ([("Content-Length", "1025")], true, "refuse 413"),
        ([("Transfer-Encoding", "chunked")], false, "limit 1024 bytes, enforced as the body streams"),
        ([], false, "pass"),
    ] as [([(String, String)], Bool, String)])
    func head(_ headers: [(String, String)], _ refused: Bool, _ decided: String) throws {
        let s = try #require(snapshot(config(Self.oneKiB)))
        let ctx = request(s, .post, "/upload", headers: headers)
        let (v, _) = runRequest(ctx)
        if refused {
            let r = try #require(v.local)
            #expect(r.status == 413)
            #expect(r.category == "body_too_large")
            #expect(r.detail == "the body is 1025 bytes; the limit is 1024")
            #expect(!ctx.requestID.isEmpty && r.body.contains(ctx.requestID))
        } else {
            #expect(v.isNext)
        }
        #expect(ctx.trace?.entries.last?.decided == decided)
    }

    /// The request-body phase, over the pieces of a body as they arrive: (pieces' sizes, the
    /// piece refused with 413, or nil).
    @Test(arguments: [
        ([1024], Int?.none),
        ([1000, 24], nil),
        ([1025], 0),
        ([512, 512, 1], 2),
        ([1000, 24, 0, 1, 5000], 3),
        ([0, 0], nil),
    ] as [([Int], Int?)])
    func body(_ sizes: [Int], _ refusedAt: Int?) throws {
        let s = try #require(snapshot(config(Self.oneKiB)))
        let ctx = request(s, .post, "/upload", headers: [("Transfer-Encoding", "chunked")])
        let (v, ran) = runRequest(ctx)
        #expect(v.isNext)
        let refused = runBody(ctx, ran: ran, sizes)
        #expect(refused?.piece == refusedAt)
        if let r = refused?.response {
            #expect(r.status == 413)
            #expect(r.category == "body_too_large")
            #expect(r.detail == "the body is over the limit of 1024 bytes")
            #expect(!ctx.requestID.isEmpty && r.body.contains(ctx.requestID))
            #expect(ctx.trace?.entries.last?.decided == "refuse 413")
            #expect(ctx.trace?.entries.last?.looked == "\(ctx.requestBodyBytes) bytes of body received")
        }
    }

    /// Each body_limit enforces its own limit: the smaller refuses, whichever comes first; and a
    /// body within both passes.
    @Test(arguments: [
        ("[{body_limit: {max_bytes: 100}}, {body_limit: {max_bytes: 1MiB}}]", [60, 60], Int?.some(100)),
        ("[{body_limit: {max_bytes: 1MiB}}, {body_limit: {max_bytes: 100}}]", [60, 60], 100),
        ("[{body_limit: {max_bytes: 1MiB}}, {body_limit: {max_bytes: 100}}]", [60, 40], nil),
        ("[{body_limit: {max_bytes: 100}}, {body_limit: {max_bytes: 200}}]", [150], 100),
    ] as [(String, [Int], Int?)])
    func eachLimitHolds(_ chain: String, _ sizes: [Int], _ refusingLimit: Int?) throws {
        let s = try #require(snapshot(config("""
          - id: r
            chain: \(chain)
            proxy: up
        """)))
        let ctx = request(s, .post, "/", headers: [("Transfer-Encoding", "chunked")])
        let (_, ran) = runRequest(ctx)
        #expect(ran == 2)
        let refused = runBody(ctx, ran: ran, sizes)
        #expect(refused?.response.detail == refusingLimit.map { "the body is over the limit of \($0) bytes" })
        #expect(ctx.requestBodyBytes == Int64(sizes.reduce(0, +)), "one count, however many stages read it")
    }

    /// A Content-Length over the smaller of two limits is refused by that one in the head phase.
    @Test func contentLengthOverTheSmallerLimit() throws {
        let s = try #require(snapshot(config("""
          - id: r
            chain:
              - body_limit: {max_bytes: 1MiB}
              - body_limit: {max_bytes: 100}
            proxy: up
        """)))
        let ctx = request(s, .post, "/", headers: [("Content-Length", "101")])
        let (v, ran) = runRequest(ctx)
        #expect(ran == 2)
        #expect(v.local?.detail == "the body is 101 bytes; the limit is 100")
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
