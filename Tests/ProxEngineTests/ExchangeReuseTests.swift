import Foundation
import NIOCore
import NIOEmbedded
import ProxCore
import ProxUpstream
import Testing
@testable import ProxEngine

/// Compares two field values: byte buffers by their bytes, anything else by its description.
private func same(_ a: Any, _ b: Any) -> Bool {
    if let x = a as? ByteBuffer, let y = b as? ByteBuffer { return x == y }
    return String(reflecting: a) == String(reflecting: b)
}

/// The stored fields of an object, by name.
private func fields(_ o: AnyObject) -> [String: Any] {
    var out: [String: Any] = [:]
    for c in Mirror(reflecting: o).children { if let l = c.label { out[l] = c.value } }
    return out
}

private func testSnapshot() throws -> Snapshot {
    try ClientHandlerEmbeddedTests.snapshot(routes: [("r", RouteMatchSpec(), .proxy(pool: 0))],
                                            pools: [PoolSpec(id: "up", index: 0, endpoints: [EndpointSpec(host: "192.0.2.1", port: 9)])])
}

private enum TestSlot: ContextSlot { typealias Value = Int }

/// `RequestContext.reset`: a kept context must hold nothing of the request it served.
@Suite struct RequestContextResetTests {
    /// Every stored field of `RequestContext`. A field added to the class fails
    /// `everyFieldIsListed` until it is listed here, and reset (`RequestContext.reset`) unless it
    /// belongs to the connection.
    static let perRequest: Set<String> = ["route", "requestIDText", "requestIDBits", "pathCaptures", "hostCaptures", "requestBody", "requestBodyComplete",
                                          "bodyBytesSeen", "dryRun", "trace", "poolID", "endpoint", "randomOverride", "stagesRun",
                                          "slotValues"]
    /// Given again by `begin` for each request.
    static let inputs: Set<String> = ["head", "snapshot", "listener"]
    /// The connection's: the same for every request on it.
    static let perConnection: Set<String> = ["client", "clientPort", "scheme", "eventLoop", "clientIPText", "tlsClient"]

    static func make(_ s: Snapshot, path: String = "/first") -> RequestContext {
        RequestContext(head: RequestHead.make(method: .get, target: path, headers: [("Host", "a")]), snapshot: s,
                       listener: s.listeners[0], client: IPAddress("192.0.2.7")!, clientPort: 5555, eventLoop: nil)
    }

    @Test func everyFieldIsListed() throws {
        let ctx = Self.make(try testSnapshot())
        #expect(Set(fields(ctx).keys) == Self.perRequest.union(Self.inputs).union(Self.perConnection))
    }

    @Test func resetGivesBackEveryFieldAsInitLeavesIt() throws {
        let s = try testSnapshot()
        let fresh = Self.make(s)
        let ctx = Self.make(s)
        ctx.route = s.routes[0]
        // A generated id read as text: both of its fields are set.
        ctx.generatedRequestID = RequestID.Generated(high: 1, low: 2)
        _ = ctx.requestID
        ctx.pathCaptures = ["p"]
        ctx.hostCaptures = ["h"]
        var body = ByteBuffer()
        body.writeString("abc")
        ctx.requestBody = body
        ctx.requestBodyComplete = true
        ctx.bodyBytesSeen = 3
        ctx.dryRun = true
        ctx.trace = Trace()
        ctx.poolID = "up"
        ctx.endpoint = "192.0.2.1:9"
        ctx.randomOverride = 7
        ctx.stagesRun = 3
        ctx[slot: TestSlot.self] = 1
        for name in Self.perRequest {
            #expect(!same(fields(ctx)[name]!, fields(fresh)[name]!), "the test must change \(name)")
        }

        ctx.reset(emptyBytes: ByteBuffer())
        for name in Self.perRequest.union(Self.perConnection) {
            #expect(same(fields(ctx)[name]!, fields(fresh)[name]!), "\(name) after reset: \(fields(ctx)[name]!)")
        }
        #expect(ctx[slot: TestSlot.self] == nil)
        // Nothing of the finished request's head: its bytes are let go.
        #expect(ctx.head.fields.bytes.readableBytes == 0)
        #expect(ctx.head.fields.slots.isEmpty)
        #expect(ctx.head.path == "")

        let s2 = try testSnapshot()
        ctx.begin(head: RequestHead.make(method: .post, target: "/next", headers: [("Host", "b")]), snapshot: s2, listener: s2.listeners[0])
        #expect(ctx.snapshot === s2)
        #expect(ctx.listener === s2.listeners[0])
        #expect(ctx.head.path == "/next")
        #expect(ctx.head.method == .post)
    }
}

/// `Exchange.reset` and the handler's reuse of a finished exchange on a keep-alive connection.
@Suite struct ExchangeReuseTests {
    /// Every stored field of `Exchange`: a new one fails `everyFieldIsListed` until listed here
    /// and reset (`Exchange.reset`).
    static let perRequest: Set<String> = ["pending", "bodyWanted", "pool", "runtime", "endpointIndex", "upstream", "upstreamHead", "pendingClientHead",
                                          "phases", "status", "bytesOut", "upstreamSentAt", "upstreamDoneAt", "errorCategory",
                                          "tunnel"]
    /// Kept (`ctx`, reset itself; `forwarding`, the connection's), or given again by `begin`
    /// (`start`, `finished`).
    static let others: Set<String> = ["ctx", "start", "finished", "forwarding"]

    @Test func everyFieldIsListed() throws {
        let ex = Exchange(ctx: RequestContextResetTests.make(try testSnapshot()), now: .now())
        #expect(Set(fields(ex).keys) == Self.perRequest.union(Self.others))
    }

    @Test func resetGivesBackEveryFieldAsInitLeavesIt() throws {
        let s = try testSnapshot()
        let pool = s.pools[0]
        let fresh = Exchange(ctx: RequestContextResetTests.make(s), now: .now())
        let ex = Exchange(ctx: RequestContextResetTests.make(s), now: .now())
        let upstreams = LoopUpstreamConnections(eventLoop: EmbeddedEventLoop())
        var body = ByteBuffer()
        body.writeString("body")
        ex.pending = [body]
        ex.bodyWanted = 16
        ex.pool = pool
        ex.runtime = upstreams.runtime(pool, version: 1, balancers: BalancerRegistry(seed: 1))
        ex.endpointIndex = 0
        ex.upstream = UpstreamConnection(endpoint: pool.endpoints[0], connections: EndpointConnections(key: "192.0.2.1:9", address: "192.0.2.1:9"),
                                         upstreams: upstreams)
        ex.upstreamHead = body
        ex.pendingClientHead = body
        ex.phases = [.completion]
        ex.finished = true
        ex.status = 502
        ex.bytesOut = 10
        ex.upstreamSentAt = .now()
        ex.upstreamDoneAt = .now()
        ex.errorCategory = "upstream_reset"
        ex.tunnel = ByteRelay.Stats(clientToUpstream: 1, upstreamToClient: 2, started: .now())
        ex.ctx.generatedRequestID = RequestID.Generated(high: 1, low: 2)
        _ = ex.ctx.requestID
        for name in Self.perRequest {
            #expect(!same(fields(ex)[name]!, fields(fresh)[name]!), "the test must change \(name)")
        }

        #expect(ex.holdsContextAlone())
        let held = ex.ctx
        #expect(!ex.holdsContextAlone())
        _ = held

        let state = LoopState(eventLoop: EmbeddedEventLoop(), snapshot: s, seed: 1, accessLog: AccessLog(fd: -1), loopCount: 1)
        ex.reset(emptyBuffer: state.emptyBuffer)
        for name in Self.perRequest {
            #expect(same(fields(ex)[name]!, fields(fresh)[name]!), "\(name) after reset: \(fields(ex)[name]!)")
        }
        #expect(ex.ctx.requestID == "", "the context is reset with the exchange")
        // Still finished until the next request begins: a late call finds it finished.
        #expect(ex.finished)
        let before = ex.start
        ex.begin(head: RequestHead.make(method: .get, target: "/next", headers: []), snapshot: s, listener: s.listeners[0],
                 now: before + .seconds(1))
        #expect(!ex.finished)
        #expect(ex.start == before + .seconds(1))
        #expect(ex.ctx.head.path == "/next")
    }

    // MARK: on a connection

    /// What the probe saw: the context at the start of each request's chain, and each completion.
    final class Seen: @unchecked Sendable {
        var atStart: [String] = []
        var completions: [(route: String, summary: ExchangeSummary)] = []
        var held: [RequestContext] = []
    }

    /// First in every route's chain: records the context as the chain finds it; on `/dirty` it
    /// then sets every per-request field a stage (or the engine) can set, on `/hold` it keeps the
    /// context past the request.
    struct ProbeStage: Stage {
        let seen: Seen
        var kind: String { "test_probe" }
        var phases: StagePhases { [.completion] }

        static func describe(_ ctx: RequestContext) -> String {
            "id=\(ctx.requestID) route=\(ctx.route?.id ?? "-") pool=\(ctx.poolID ?? "-") endpoint=\(ctx.endpoint ?? "-") "
                + "body=\(ctx.requestBody?.readableBytes ?? -1)/\(ctx.requestBodyComplete)/\(ctx.requestBodyBytes) dry=\(ctx.dryRun) ran=\(ctx.stagesRun) tracing=\(ctx.isTracing) "
                + "captures=\(ctx.pathCaptures)\(ctx.hostCaptures) random=\(ctx.randomOverride.map { "\($0)" } ?? "-") "
                + "slot=\(ctx[slot: TestSlot.self].map { "\($0)" } ?? "-")"
        }

        func request(_ ctx: RequestContext) -> Verdict {
            seen.atStart.append(Self.describe(ctx))
            switch ctx.head.path {
            case "/dirty":
                ctx.requestID = "dirty-id"
                ctx.poolID = "up"
                ctx.endpoint = "192.0.2.1:9"
                ctx.requestBody = ByteBuffer()
                ctx.requestBodyComplete = true
                ctx.bodyBytesSeen = 5
                ctx.dryRun = true
                ctx.trace = Trace()
                ctx.pathCaptures = ["p"]
                ctx.hostCaptures = ["h"]
                ctx.randomOverride = 42
                ctx[slot: TestSlot.self] = 1
            case "/hold":
                ctx.requestID = "held-id"
                seen.held.append(ctx)
            default:
                break
            }
            return .next
        }

        func completed(_ ctx: RequestContext, _ summary: ExchangeSummary) {
            seen.completions.append((ctx.route?.id ?? "-", summary))
        }
    }

    static func rig(_ seen: Seen) throws -> ClientHandlerEmbeddedTests.Rig {
        // 192.0.2.0/24 is TEST-NET; weight 0: no eligible endpoint, a 503 before any connection.
        let pool = PoolSpec(id: "up", index: 0, endpoints: [EndpointSpec(host: "192.0.2.1", port: 9, weight: 0)])
        let s = try ClientHandlerEmbeddedTests.snapshot(routes: [
            ("dirty", RouteMatchSpec(path: .exact("/dirty")), try ClientHandlerEmbeddedTests.respond(200, "d")),
            ("hold", RouteMatchSpec(path: .exact("/hold")), try ClientHandlerEmbeddedTests.respond(200, "h")),
            ("clean", RouteMatchSpec(path: .exact("/clean")), try ClientHandlerEmbeddedTests.respond(200, "c")),
            ("fail", RouteMatchSpec(path: .exact("/fail")), .proxy(pool: 0)),
        ], stages: [ProbeStage(seen: seen)], pools: [pool])
        let rig = try ClientHandlerEmbeddedTests.Rig(s)
        rig.state.tracker = ObjectTracker()
        return rig
    }

    static let clean = "id= route=clean pool=- endpoint=- body=-1/false/0 dry=false ran=0 tracing=false captures=[][] random=- slot=-"

    @Test func nothingOfARequestReachesTheNextOnTheConnection() throws {
        let seen = Seen()
        let rig = try Self.rig(seen)
        func get(_ path: String) throws -> String {
            try rig.send("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
            return try rig.output()
        }
        #expect(try get("/dirty").hasPrefix("HTTP/1.1 200 "))
        #expect(try get("/clean").hasPrefix("HTTP/1.1 200 "))
        #expect(seen.atStart.last == Self.clean)

        // No route: the request id is new, and no route of an earlier request runs its response
        // or completion phase.
        let notFound = try get("/nope")
        #expect(notFound.hasPrefix("HTTP/1.1 404 "))
        #expect(notFound.contains("X-Request-Id: "))
        #expect(!notFound.contains("dirty-id"))
        #expect(seen.completions.count == 2)

        // A failure Prox answers (pool, runtime, status and error category set), then a local
        // answer: its summary has none of them.
        let failed = try get("/fail")
        #expect(failed.hasPrefix("HTTP/1.1 503 "), "\(failed.prefix(60))")
        #expect(try get("/clean").hasPrefix("HTTP/1.1 200 "))
        #expect(seen.atStart.last == Self.clean)
        #expect(seen.completions.map(\.route) == ["dirty", "clean", "fail", "clean"])
        if seen.completions.count == 4 {
            let fail = seen.completions[2].summary, ok = seen.completions[3].summary
            #expect(fail.status == 503 && fail.error == "no_upstream_endpoint")
            #expect(ok.status == 200 && ok.error == "" && ok.upstreamMicros == -1 && ok.bytesIn == 0)
            #expect(ok.bytesOut == seen.completions[1].summary.bytesOut, "the same answer as the first /clean")
        }
        #expect(rig.channel.isActive)
        // The first exchange is not kept (a connection may make one request only); the second
        // serves every request after it.
        let made = rig.state.tracker!.made
        #expect(made[.exchange] == 2 && made[.requestContext] == 2, "\(made)")
    }

    @Test func pipelinedRequestsReuseTheExchange() throws {
        let seen = Seen()
        let rig = try Self.rig(seen)
        try rig.send("GET /dirty HTTP/1.1\r\nHost: x\r\n\r\nGET /clean HTTP/1.1\r\nHost: x\r\n\r\nGET /clean HTTP/1.1\r\nHost: x\r\n\r\n")
        (rig.channel.eventLoop as! EmbeddedEventLoop).run()
        let out = try rig.output()
        #expect(out.components(separatedBy: "HTTP/1.1 200 ").count == 4)
        #expect(seen.atStart.dropFirst().allSatisfy { $0 == Self.clean }, "\(seen.atStart)")
        #expect(rig.state.tracker!.made[.exchange] == 2)
    }

    /// A context a stage kept is never reset or reused: the stage still sees its request.
    @Test func aContextSomeoneHoldsIsLeftAlone() throws {
        let seen = Seen()
        let rig = try Self.rig(seen)
        for path in ["/clean", "/hold", "/clean", "/dirty", "/clean"] {
            try rig.send("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try rig.output().hasPrefix("HTTP/1.1 200 "))
        }
        #expect(seen.atStart[2] == Self.clean && seen.atStart[4] == Self.clean)
        let held = try #require(seen.held.first)
        #expect(held.requestID == "held-id")
        #expect(held.route?.id == "hold")
        #expect(held.stagesRun == 1)
        // The first (not kept), the held one, then one made for /clean and reused after it.
        #expect(rig.state.tracker!.made[.exchange] == 3)
    }

    /// A kept exchange something else took hold of (a late callback of its request would) is
    /// not reused: the next request gets a new one, and the holder's is left as it was.
    @Test func aKeptExchangeSomeoneHoldsIsNotReused() throws {
        let seen = Seen()
        let rig = try Self.rig(seen)
        let handler = try #require(rig.state.connections.values.first)
        for _ in 0..<2 {
            try rig.send("GET /clean HTTP/1.1\r\nHost: a\r\n\r\n")
            _ = try rig.output()
        }
        let held = try #require(handler.spare)
        try rig.send("GET /dirty HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try rig.output().hasPrefix("HTTP/1.1 200 "))
        #expect(rig.state.tracker!.made[.exchange] == 3)
        #expect(held.ctx.requestID == "" && held.ctx.route == nil)
        #expect(handler.spare !== held)
    }

    /// A connection that made one request keeps nothing; one that made more keeps its last
    /// exchange until the timeout sweep finds it idle for longer than the sweep interval.
    @Test func anIdleConnectionKeepsNoExchange() throws {
        let seen = Seen()
        let rig = try Self.rig(seen)
        let tracker = rig.state.tracker!
        try rig.send("GET /clean HTTP/1.1\r\nHost: a\r\n\r\n")
        _ = try rig.output()
        #expect(tracker.alive()[.exchange] == nil, "the first is not kept")
        try rig.send("GET /clean HTTP/1.1\r\nHost: a\r\n\r\n")
        _ = try rig.output()
        #expect(tracker.alive()[.exchange] == 1, "kept for the next request")
        for c in rig.state.connections.values { c.checkTimeouts(.now()) }
        #expect(tracker.alive()[.exchange] == 1, "not yet: idle for less than a sweep interval")
        for c in rig.state.connections.values { c.checkTimeouts(.now() + .seconds(1)) }
        #expect(tracker.alive()[.exchange] == nil && tracker.alive()[.requestContext] == nil, "\(tracker.alive())")
        #expect(rig.channel.isActive)
        try rig.send("GET /clean HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try rig.output().hasPrefix("HTTP/1.1 200 "))
        #expect(tracker.made[.exchange] == 3)
    }
}
