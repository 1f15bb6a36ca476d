import Foundation
import Logging
import NIOConcurrencyHelpers
import ProxConfig
import ProxCore
import ProxMain
import Testing
@testable import ProxEngine

/// A test cache slot: answers `/hit` itself, misses everything else, and records every
/// response head the engine offers it.
struct RecordingCache: CacheStage {
    struct Offer: Equatable { var path: String; var status: Int; var servedBy: String? }
    let offers = NIOLockedValueBox<[Offer]>([])
    var kind: String { "recording" }

    func lookup(_ ctx: RequestContext) -> CacheLookup {
        ctx.head.path == "/hit" ? .hit(LocalResponse(status: 200, body: "from the cache\n")) : .miss
    }

    func store(_ ctx: RequestContext, _ head: ResponseHead) {
        let offer = Offer(path: ctx.head.path, status: head.status, servedBy: head.fields.first(HeaderName("X-Served-By")))
        offers.withLockedValue { $0.append(offer) }
    }
}

@Suite(.serialized) struct CacheSlotE2ETests {
    static let config = """
    version: 1
    server: { access_log: "off" }
    listeners: [{ id: main, address: "127.0.0.1:0" }]
    pools:
      - id: backend
        endpoints: [{ address: "{upstream}" }]
    routes:
      - id: plain
        match: { path: { prefix: /plain } }
        proxy: { pool: backend }
      - id: cached
        match: { path: { prefix: / } }
        chain:
          - headers: { response: { set: { X-Served-By: prox } } }
        proxy: { pool: backend }
    """

    /// The compiled config with `cache` in route `cached`'s slot (the config language has no
    /// cache yet).
    static func serve(_ up: TestUpstream, cache: RecordingCache) throws -> ProxServer {
        let r = ConfigCompiler.compile(text: config.replacingOccurrences(of: "{upstream}", with: up.address),
                                       fileName: "cache.yaml", version: 1, filters: try ProxMain.shippedFilters())
        let s = try #require(r.snapshot, "\(r.diagnostics)")
        let routes = s.routes.map { rt in
            rt.id != "cached" ? rt : Route(id: rt.id, index: rt.index, match: rt.match, chain: rt.chain, cache: cache, split: rt.split,
                                           action: rt.action, needsPathCaptures: rt.needsPathCaptures,
                                           needsHostCaptures: rt.needsHostCaptures, origin: rt.origin)
        }
        let snapshot = Snapshot(version: 1, source: s.source, listeners: s.listeners, routes: routes, pools: s.pools,
                                router: s.router, settings: s.settings)
        var logger = Logger(label: "prox-test")
        logger.logLevel = .error
        let server = try ProxServer(snapshot: snapshot, threads: 1, logger: logger, engine: ProxHarness.engine(for: snapshot))
        try server.start()
        return server
    }

    @Test func upstreamResponseHeadIsOfferedToTheCacheSlotAfterTheResponseStages() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let cache = RecordingCache()
        let server = try Self.serve(up, cache: cache)
        defer { server.shutdown() }
        let c = try TestClient(port: server.boundPorts[0])

        // A miss goes upstream; its head is offered once, as the response stages left it.
        try c.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        let miss = try c.readResponse()
        #expect(miss.status == 200 && miss.header("x-upstream") == "test")
        #expect(cache.offers.withLockedValue { $0 } == [.init(path: "/echo", status: 200, servedBy: "prox")])

        // Any status the upstream answers is offered: keeping it is the cache's decision.
        try c.send("GET /status/404 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try c.readResponse().status == 404)
        #expect(cache.offers.withLockedValue { $0.last } == .init(path: "/status/404", status: 404, servedBy: "prox"))

        // A hit is answered from the cache: no upstream head, nothing offered.
        let requestsBefore = up.requests.withLockedValue { $0 }
        try c.send("GET /hit HTTP/1.1\r\nHost: a\r\n\r\n")
        let hit = try c.readResponse()
        #expect(hit.status == 200 && hit.text == "from the cache\n")
        #expect(up.requests.withLockedValue { $0 } == requestsBefore)

        // A route without a cache slot offers nothing.
        try c.send("GET /plain HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        #expect(cache.offers.withLockedValue { $0.count } == 2)
    }
}
