import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// A real external filter service on 127.0.0.1 (NIOHTTP1, independent of Prox's framer). It
/// reads the JSON Prox POSTs, keeps it, and answers by the request's path:
///   deny      respond 403 with a header and a body
///   edit      continue, removing X-Secret, setting X-User and adding X-Tag
///   slow      continue, after 1500 ms
///   garbage   200 with a body that is not JSON
///   status500 a 500
///   reserved  continue, setting Content-Length (not a filter's to set)
///   anything else: 204 (continue, no edits)
final class TestExtService: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var channel: (any Channel)!
    let calls = NIOLockedValueBox<[[String: Any]]>([])
    let connections = NIOLockedValueBox(0)
    var port: Int { channel.localAddress!.port! }

    init() throws {
        let calls = self.calls, connections = self.connections
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                connections.withLockedValue { $0 += 1 }
                return ch.pipeline.configureHTTPServerPipeline().flatMap {
                    ch.pipeline.addHandler(ExtServiceHandler(calls: calls))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    var lastCall: [String: Any]? { calls.withLockedValue { $0.last } }
    var callCount: Int { calls.withLockedValue { $0.count } }
}

final class ExtServiceHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let calls: NIOLockedValueBox<[[String: Any]]>
    var body = ByteBuffer()

    init(calls: NIOLockedValueBox<[[String: Any]]>) { self.calls = calls }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: body.clear()
        case .body(var b): body.writeBuffer(&b)
        case .end:
            let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
            calls.withLockedValue { $0.append(object) }
            let path = object["path"] as? String ?? ""
            if path.contains("deny") {
                answer(context, 200, #"{"action":"respond","status":403,"headers":{"X-Why":"denied"},"body":"no\n"}"#)
            } else if path.contains("edit") {
                answer(context, 200, #"{"action":"continue","remove_headers":["X-Secret"],"set_headers":{"X-User":"alice"},"add_headers":{"X-Tag":"t1"}}"#)
            } else if path.contains("slow") {
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: .milliseconds(1500)) { self.answer(bound.value, 200, #"{"action":"continue"}"#) }
            } else if path.contains("garbage") {
                answer(context, 200, "this is not json")
            } else if path.contains("status500") {
                answer(context, 500, "oops")
            } else if path.contains("reserved") {
                answer(context, 200, #"{"action":"continue","set_headers":{"Content-Length":"5"}}"#)
            } else {
                var h = HTTPResponseHead(version: .http1_1, status: .noContent)
                h.headers.add(name: "Content-Length", value: "0")
                context.write(wrapOutboundOut(.head(h)), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }

    func answer(_ context: ChannelHandlerContext, _ status: Int, _ text: String) {
        var h = HTTPResponseHead(version: .http1_1, status: .init(statusCode: status))
        h.headers.add(name: "Content-Type", value: "application/json")
        h.headers.add(name: "Content-Length", value: String(text.utf8.count))
        context.write(wrapOutboundOut(.head(h)), promise: nil)
        var b = context.channel.allocator.buffer(capacity: text.utf8.count)
        b.writeString(text)
        context.write(wrapOutboundOut(.body(.byteBuffer(b))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

@Suite(.serialized) struct ExtFilterE2ETests {
    static func config(service: Int, deadPort: Int) -> String {
        """
        version: 1
        server: { access_log: "off" }
        listeners: [{ id: main, address: "127.0.0.1:0" }]
        pools:
          - id: backend
            endpoints: [{ address: "{upstream}" }]
        routes:
          - id: open
            match: { path: { prefix: /open/ } }
            chain: [{ ext_filter: { url: "http://127.0.0.1:\(service)/check", timeout: 300ms, fail_mode: open } }]
            proxy: { pool: backend }
          - id: body
            match: { path: { prefix: /body/ } }
            chain: [{ ext_filter: { url: "http://127.0.0.1:\(service)/check?v=1", max_body_bytes: 16 } }]
            proxy: { pool: backend }
          - id: down
            match: { path: { prefix: /down/ } }
            chain: [{ ext_filter: { url: "http://127.0.0.1:\(deadPort)/check" } }]
            proxy: { pool: backend }
          - id: closed
            match: { path: { prefix: / } }
            chain:
              - request_id: {}
              - ext_filter: { url: "http://localhost:\(service)/check", timeout: 300ms }
            proxy: { pool: backend }
        """
    }

    /// A port nothing listens on.
    static func deadPort() throws -> Int {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let ch = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        let port = ch.localAddress!.port!
        try ch.close().wait()
        return port
    }

    /// A real upstream, a real external service and the proxy in front, for `body`.
    func withSetup(_ body: (TestUpstream, TestExtService, ProxHarness) throws -> Void) throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let svc = try TestExtService()
        defer { svc.stop() }
        let prox = try ProxHarness(Self.config(service: svc.port, deadPort: try Self.deadPort()), upstream: up.address)
        defer { prox.stop() }
        try body(up, svc, prox)
    }

    @Test func continueWithEditsRespondAndPooledConnections() throws {
        try withSetup { up, svc, prox in
        let c = try prox.client()

        // continue, with the service's header edits applied before the upstream sees the head.
        try c.send("GET /edit/echo?q=1 HTTP/1.1\r\nHost: shop.test\r\nX-Secret: s3\r\nUser-Agent: t\r\n\r\n")
        let edited = try c.readResponse()
        #expect(edited.status == 200)
        #expect(edited.text.contains("h:x-user=alice"))
        #expect(edited.text.contains("h:x-tag=t1"))
        #expect(!edited.text.contains("x-secret"))
        let call = try #require(svc.lastCall)
        #expect(call["method"] as? String == "GET")
        #expect(call["target"] as? String == "/edit/echo?q=1")
        #expect(call["path"] as? String == "/edit/echo")
        #expect(call["host"] as? String == "shop.test")
        #expect(call["route"] as? String == "closed")
        #expect(call["http_version"] as? String == "HTTP/1.1")
        #expect((call["request_id"] as? String)?.isEmpty == false, "the request_id stage ran first")
        #expect((call["client"] as? [String: Any])?["ip"] as? String == "127.0.0.1")
        let headers = (call["headers"] as? [[String]]) ?? []
        #expect(headers.contains(["X-Secret", "s3"]), "the service sees the head as received")
        #expect(call["body"] == nil, "no body asked for")

        // respond: the service's answer goes to the client; the upstream is not contacted.
        let before = up.requests.withLockedValue { $0 }
        try c.send("GET /deny HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        let denied = try c.readResponse()
        #expect(denied.status == 403)
        #expect(denied.text == "no\n")
        #expect(denied.header("x-why") == "denied")
        #expect(up.requests.withLockedValue { $0 } == before)

        // 204: continue unchanged. Sequential calls share one pooled connection.
        for _ in 0..<5 {
            try c.send("GET /plain HTTP/1.1\r\nHost: shop.test\r\n\r\n")
            #expect(try c.readResponse().status == 200)
        }
        #expect(svc.callCount == 7)
        #expect(svc.connections.withLockedValue { $0 } == 1, "calls reuse the loop's keep-alive connection")

        // A reload that keeps the service keeps its connections (a registry keyed by address).
        try prox.reload(Self.config(service: svc.port, deadPort: try Self.deadPort()), upstream: up.address)
        let after = try prox.client()
        try after.send("GET /plain HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        #expect(try after.readResponse().status == 200)
        #expect(svc.callCount == 8)
        #expect(svc.connections.withLockedValue { $0 } == 1, "the reload kept the pooled connection")
        }
    }

    @Test func failuresFollowFailMode() throws {
        try withSetup { up, svc, prox in

        func get(_ path: String) throws -> TestResponse {
            let c = try prox.client()
            try c.send("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
            return try c.readResponse()
        }
        let upBefore = up.requests.withLockedValue { $0 }
        let started = Date()
        let slow = try get("/slow")
        #expect(slow.status == 503)
        #expect(slow.header("x-prox-error") == "ext_filter_timeout")
        #expect(slow.text.contains("request id: "))
        #expect(Date().timeIntervalSince(started) < 1.4, "the 300 ms timeout answers before the service's 1500 ms")
        for (path, category) in [("/garbage", "ext_filter_bad_answer"), ("/status500", "ext_filter_bad_answer"),
                                 ("/reserved", "ext_filter_bad_answer"), ("/down/x", "ext_filter_unavailable")] {
            let r = try get(path)
            #expect(r.status == 503, "\(path)")
            #expect(r.header("x-prox-error") == category, "\(path)")
        }
        #expect(up.requests.withLockedValue { $0 } == upBefore, "fail_mode closed contacts no upstream")

        // fail_mode open: the same failures let the request through.
        let open = try get("/open/slow")
        #expect(open.status == 200)
        #expect(open.text.contains("target=/open/slow"))
        #expect(try get("/open/garbage").status == 200)

        // A timed-out call's connection is closed, not reused: the next call still works.
        #expect(try get("/after-timeout").status == 200)
        }
    }

    @Test func bodyUpToTheCapGoesToTheServiceAndAllOfItUpstream() throws {
        try withSetup { up, svc, prox in

        func bodyOfLastCall() -> (text: String, bytes: Int, complete: Bool)? {
            guard let b = svc.lastCall?["body"] as? [String: Any], let b64 = b["base64"] as? String,
                  let data = Data(base64Encoded: b64) else { return nil }
            return (String(decoding: data, as: UTF8.self), b["bytes"] as? Int ?? -1, b["complete"] as? Bool ?? false)
        }

        // Content-Length over the cap: the service gets the first 16 bytes, the upstream all 40.
        let body = "0123456789abcdefghijklmnopqrstuvwxyzABCD"
        let c = try prox.client()
        try c.send("POST /body/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n" + body)
        let r = try c.readResponse()
        #expect(r.status == 200)
        #expect(r.text.contains("\nbody=40\n"), "\(r.text)")
        let first = try #require(bodyOfLastCall())
        #expect(first.text == "0123456789abcdef")
        #expect(first.bytes == 16)
        #expect(first.complete == false)
        #expect(svc.lastCall?.keys.contains("body") == true)

        // A short chunked body: all of it, complete.
        try c.send("POST /body/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n")
        let chunked = try c.readResponse()
        #expect(chunked.status == 200)
        #expect(chunked.text.contains("\nbody=10\n"))
        let second = try #require(bodyOfLastCall())
        #expect(second.text == "abcdefghij")
        #expect(second.complete == true)

        // Expect: 100-continue: Prox asks for the body itself (the client waits for the 100),
        // once, and the upstream still gets the whole body.
        let e = try prox.client()
        try e.send("POST /body/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\nExpect: 100-continue\r\n\r\n")
        #expect(try e.readLine() == "HTTP/1.1 100 Continue")
        #expect(try e.readLine() == "")
        try e.send("ZYXWVUTSRQPONMLKJIHG")
        let expected = try e.readResponse()
        #expect(expected.status == 200)
        #expect(expected.text.contains("\nbody=20\n"))
        #expect(bodyOfLastCall()?.text == "ZYXWVUTSRQPONMLK")
        #expect(!expected.statusLine.contains("100"))

        // A bodiless request on the same route: no waiting, no body sent.
        try c.send("GET /body/echo HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        #expect(bodyOfLastCall()?.bytes == 0)
        }
    }
}
