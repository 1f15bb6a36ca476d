import Foundation
import NIOCore
import NIOEmbedded
import ProxCore
import Testing
@testable import ProxEngine

/// The client connection handler on an `EmbeddedChannel`: bytes in, bytes out, no sockets.
/// Snapshots are built by hand here so these tests depend on the engine alone.
@Suite struct ClientHandlerEmbeddedTests {
    static func snapshot(routes: [(String, RouteMatchSpec, RouteAction)], stages: [any Stage] = [],
                         pools: [PoolSpec] = []) throws -> Snapshot {
        let listener = ListenerSpec(id: "main", index: 0, host: "127.0.0.1", port: 0)
        var built: [Route] = []
        for (i, r) in routes.enumerated() {
            built.append(Route(id: r.0, index: i, match: r.1, chain: RouteChain(stages), action: r.2,
                               needsPathCaptures: false, needsHostCaptures: false, origin: "test:\(i + 1):1"))
        }
        return Snapshot(version: 1, source: "test", listeners: [listener], routes: built, pools: pools,
                        router: try Router(built.map(\.match)), settings: ServerSettings(accessLog: "off"))
    }

    static func respond(_ status: Int, _ body: String) throws -> RouteAction {
        .respond(status: status, headers: [], body: try Template(body))
    }

    final class Rig {
        let channel: EmbeddedChannel
        let state: LoopState
        init(_ snapshot: Snapshot) throws {
            let loop = EmbeddedEventLoop()
            channel = EmbeddedChannel(loop: loop)
            state = LoopState(eventLoop: loop, snapshot: snapshot, seed: 1, accessLog: AccessLog(fd: -1), loopCount: 1)
            let handler = ClientConnectionHandler(state: state, listener: snapshot.listeners[0], client: IPAddress("192.0.2.7")!, clientPort: 5555)
            try channel.pipeline.syncOperations.addHandler(handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 80)).wait()
        }

        func send(_ s: String) throws {
            var b = channel.allocator.buffer(capacity: s.utf8.count)
            b.writeString(s)
            try channel.writeInbound(b)
            channel.pipeline.fireChannelReadComplete()
        }

        func output() throws -> String {
            var out = ""
            while var b = try channel.readOutbound(as: ByteBuffer.self) {
                out += b.readString(length: b.readableBytes) ?? ""
            }
            return out
        }
    }

    @Test func localResponseWithRequestIdOnErrors() throws {
        let s = try Self.snapshot(routes: [("hello", RouteMatchSpec(path: .exact("/hello")), try Self.respond(200, "hi {client_ip}\n"))])
        let rig = try Rig(s)
        try rig.send("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        let out = try rig.output()
        #expect(out.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(out.contains("Content-Length: 13\r\n"))
        #expect(out.hasSuffix("\r\n\r\nhi 192.0.2.7\n"))
        try rig.send("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
        let notFound = try rig.output()
        #expect(notFound.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(notFound.contains("X-Request-Id: "))
        #expect(notFound.contains("X-Prox-Error: no_route"))
        #expect(rig.channel.isActive)
    }

    @Test func pipelinedRequestsAnswerInOrder() throws {
        let s = try Self.snapshot(routes: [
            ("a", RouteMatchSpec(path: .exact("/a")), try Self.respond(200, "A")),
            ("b", RouteMatchSpec(path: .exact("/b")), try Self.respond(201, "B")),
        ])
        let rig = try Rig(s)
        try rig.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        (rig.channel.eventLoop as! EmbeddedEventLoop).run()
        let out = try rig.output()
        let statuses = out.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
        #expect(statuses == ["200", "201", "200"])
        #expect(out.hasSuffix("A"))
    }

    @Test func malformedRequestGets400AndClose() throws {
        let s = try Self.snapshot(routes: [("all", RouteMatchSpec(), try Self.respond(200, "ok"))])
        for bad in [
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n",
        ] {
            let rig = try Rig(s)
            try rig.send(bad)
            let out = try rig.output()
            #expect(out.hasPrefix("HTTP/1.1 400 "), "\(bad.debugDescription) -> \(out)")
            #expect(out.contains("Connection: close\r\n"))
            #expect(out.contains("X-Request-Id: "))
            #expect(!rig.channel.isActive, "connection must close after \(bad.debugDescription)")
        }
    }

    @Test func limitsMapTo414And431And501() throws {
        let s = try Self.snapshot(routes: [("all", RouteMatchSpec(), try Self.respond(200, "ok"))])
        let longURI = "GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n"
        let bigHeader = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "b", count: 40_000) + "\r\n\r\n"
        let te = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked, br\r\n\r\n"
        for (req, status) in [(longURI, "414"), (bigHeader, "431"), (te, "501")] {
            let rig = try Rig(s)
            try rig.send(req)
            let out = try rig.output()
            #expect(out.hasPrefix("HTTP/1.1 \(status) "), "\(out.prefix(60))")
            #expect(!rig.channel.isActive)
        }
    }

    @Test func http10ClosesUnlessKeepAlive() throws {
        let s = try Self.snapshot(routes: [("all", RouteMatchSpec(), try Self.respond(200, "ok"))])
        let rig = try Rig(s)
        try rig.send("GET / HTTP/1.0\r\n\r\n")
        let out = try rig.output()
        #expect(out.hasPrefix("HTTP/1.1 200 OK"))
        #expect(out.contains("Connection: close"))
        #expect(!rig.channel.isActive)

        let rig2 = try Rig(s)
        try rig2.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let out2 = try rig2.output()
        #expect(out2.contains("Connection: keep-alive"))
        #expect(rig2.channel.isActive)
    }

    @Test func headRequestGetsNoBody() throws {
        let s = try Self.snapshot(routes: [("all", RouteMatchSpec(), try Self.respond(200, "hello"))])
        let rig = try Rig(s)
        try rig.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
        let out = try rig.output()
        #expect(out.contains("Content-Length: 5\r\n"))
        #expect(out.hasSuffix("\r\n\r\n"))
    }

    @Test func localAnswerBeforeUnreadBodyClosesConnection() throws {
        let s = try Self.snapshot(routes: [("all", RouteMatchSpec(), try Self.respond(403, "no"))])
        let rig = try Rig(s)
        try rig.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npartial")
        let out = try rig.output()
        #expect(out.hasPrefix("HTTP/1.1 403 "))
        #expect(out.contains("Connection: close"))
        #expect(!rig.channel.isActive)
    }

    @Test func headerTimeoutAnswers408() throws {
        let s = try Self.snapshot(routes: [("all", RouteMatchSpec(), try Self.respond(200, "ok"))])
        let rig = try Rig(s)
        try rig.send("GET / HTTP/1.1\r\nHost: a\r\n")
        #expect(try rig.output().isEmpty)
        for c in rig.state.connections.values { c.checkTimeouts(.now() + .seconds(11)) }
        let out = try rig.output()
        #expect(out.hasPrefix("HTTP/1.1 408 "))
        #expect(!rig.channel.isActive)
    }

    @Test func keepAliveIdleCloses() throws {
        let s = try Self.snapshot(routes: [("all", RouteMatchSpec(), try Self.respond(200, "ok"))])
        let rig = try Rig(s)
        try rig.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        _ = try rig.output()
        for c in rig.state.connections.values { c.checkTimeouts(.now() + .seconds(30)) }
        #expect(rig.channel.isActive)
        for c in rig.state.connections.values { c.checkTimeouts(.now() + .seconds(61)) }
        #expect(!rig.channel.isActive)
    }

    /// Refuses the body past `limit` bytes in its request-body phase, as body_limit does (from
    /// the count the phase keeps, `ctx.requestBodyBytes`), naming its limit in the answer.
    struct LimitStage: Stage {
        let limit: Int64
        var kind: String { "test_limit" }
        var phases: StagePhases { [.requestBody] }
        func request(_ ctx: RequestContext) -> Verdict { .next }
        func requestBody(_ ctx: RequestContext, _ part: ByteBuffer) -> BodyVerdict {
            ctx.requestBodyBytes > limit ? .respond(LocalResponse.error(413, "body_too_large", requestID: "r", detail: "limit \(limit)")) : .next
        }
    }

    /// Suspends the chain until the test completes `gate.promise`.
    final class Gate: @unchecked Sendable { var promise: EventLoopPromise<Verdict>? }
    struct SuspendStage: Stage {
        let gate: Gate
        var kind: String { "test_suspend" }
        func request(_ ctx: RequestContext) -> Verdict {
            let p = ctx.eventLoop!.makePromise(of: Verdict.self)
            gate.promise = p
            return .suspend(p.futureResult)
        }
    }

    // 192.0.2.0/24 is TEST-NET: a connection attempt there would hang, not fail. (On an
    // EmbeddedChannel any upstream connection attempt traps: these tests pass only if none is made.)
    static let unreachablePool = PoolSpec(id: "up", index: 0, endpoints: [EndpointSpec(host: "192.0.2.1", port: 9)])

    static func expect413(_ rig: Rig, limit: Int64, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let out = try rig.output()
        #expect(out.hasPrefix("HTTP/1.1 413 "), "\(out.prefix(80))", sourceLocation: sourceLocation)
        #expect(out.contains("X-Prox-Error: body_too_large"), sourceLocation: sourceLocation)
        #expect(out.contains("(limit \(limit))"), "\(out)", sourceLocation: sourceLocation)
        #expect(out.contains("Connection: close"), sourceLocation: sourceLocation)
        #expect(!rig.channel.isActive, sourceLocation: sourceLocation)
        #expect(rig.state.upstreams.openCount("192.0.2.1:9") == 0, sourceLocation: sourceLocation)
    }

    /// The body that came with the head is framed, and judged by the request-body phase, before
    /// the upstream is contacted.
    @Test func chunkedBodyOverALimitThatCameWithTheHeadIs413BeforeAnyUpstreamConnection() throws {
        let s = try Self.snapshot(routes: [("all", RouteMatchSpec(), .proxy(pool: 0))], stages: [LimitStage(limit: 10)],
                                  pools: [Self.unreachablePool])
        let rig = try Rig(s)
        try rig.send("POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n678901\r\n")
        try Self.expect413(rig, limit: 10)
    }

    /// Body held while a stage is suspended goes through the request-body phase of every stage
    /// that ran once the chain decides, including stages after the suspended one, before the
    /// upstream is contacted.
    @Test func bodyHeldWhileAStageIsSuspendedIsJudgedBeforeAnyUpstreamConnection() throws {
        let gate = Gate()
        let s = try Self.snapshot(routes: [("all", RouteMatchSpec(), .proxy(pool: 0))],
                                  stages: [SuspendStage(gate: gate), LimitStage(limit: 10)], pools: [Self.unreachablePool])
        let rig = try Rig(s)
        try rig.send("POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n")
        try rig.send("6\r\n678901\r\n")
        #expect(try rig.output().isEmpty)
        #expect(rig.channel.isActive)
        try #require(gate.promise).succeed(.next)
        (rig.channel.eventLoop as! EmbeddedEventLoop).run()
        try Self.expect413(rig, limit: 10)
    }

    /// Each limiting stage enforces its own limit: the smaller refuses, wherever it stands.
    @Test func twoLimitsTheSmallerRefuses() throws {
        for stages in [[LimitStage(limit: 100), LimitStage(limit: 10)], [LimitStage(limit: 10), LimitStage(limit: 100)]] {
            let s = try Self.snapshot(routes: [("all", RouteMatchSpec(), .proxy(pool: 0))], stages: stages,
                                      pools: [Self.unreachablePool])
            let rig = try Rig(s)
            try rig.send("POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nc\r\n0123456789ab\r\n")
            try Self.expect413(rig, limit: 10)
        }
    }

    @Test func poolWithNoEligibleEndpointIs503() throws {
        let pool = PoolSpec(id: "up", index: 0, endpoints: [EndpointSpec(host: "192.0.2.1", port: 9, weight: 0)])
        let s = try Self.snapshot(routes: [("all", RouteMatchSpec(), .proxy(pool: 0))], pools: [pool])
        let rig = try Rig(s)
        try rig.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let out = try rig.output()
        #expect(out.hasPrefix("HTTP/1.1 503 "), "\(out.prefix(80))")
        #expect(out.contains("X-Prox-Error: no_upstream_endpoint"))
        // A failure Prox answered with the request fully read keeps the connection.
        #expect(rig.channel.isActive)
        #expect(rig.state.upstreams.openCount("192.0.2.1:9") == 0)
    }
}
