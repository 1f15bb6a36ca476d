import Foundation
import NIOCore
import Testing
@testable import ProxEngine

/// Issue 6: every object a connection or a request makes is freed once the connection closes.
/// A debug build's `ObjectTracker` keeps weak references to each client handler, its channel
/// and channel context, each exchange and request context, and each upstream connection; after
/// a few hundred connections of every kind (proxied, local answer, upstream failure, client
/// reset mid-response, malformed, drain), none may be left alive.
@Suite(.serialized) struct LifetimeE2ETests {
    static let config = """
    version: 1
    server: { access_log: "off" }
    listeners: [{ id: main, address: "127.0.0.1:0" }]
    pools:
      - id: backend
        endpoints: [{ address: "{upstream}" }]
      - id: dead
        endpoints: [{ address: "{upstream2}" }]
    routes:
      - id: local
        match: { path: { prefix: /local } }
        respond: { status: 200, body: "local\\n" }
      - id: dead
        match: { path: { prefix: /dead } }
        proxy: { pool: dead }
      - id: all
        match: { path: { prefix: / } }
        chain: [request_id]
        proxy: { pool: backend }
    """

    /// Waits until nothing tracked is alive (closes complete asynchronously), up to 5 s.
    func waitForNoneAlive(_ prox: ProxHarness) -> [ObjectTracker.Kind: Int] {
        var alive = prox.server.liveObjects()
        let deadline = Date().addingTimeInterval(5)
        while !alive.isEmpty && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
            alive = prox.server.liveObjects()
        }
        return alive
    }

    @Test func closedConnectionsFreeEverything() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        // Port 9 on loopback: nothing listens, so connecting fails at once.
        let prox = try ProxHarness(Self.config, upstream: up.address, upstream2: "127.0.0.1:9", threads: 2)
        defer { prox.stop() }
        prox.server.trackObjects()

        // One proxied request each, then close.
        for i in 0..<150 {
            let c = try prox.client()
            try c.send("GET /echo/\(i) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try c.readResponse().status == 200)
        }
        // Several requests on one keep-alive connection, then close.
        for _ in 0..<20 {
            let c = try prox.client()
            for _ in 0..<5 {
                try c.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
                #expect(try c.readResponse().status == 200)
            }
        }
        // A local answer.
        for _ in 0..<60 {
            let c = try prox.client()
            try c.send("GET /local HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try c.readResponse().status == 200)
        }
        // An upstream that refuses the connection: 502.
        for _ in 0..<30 {
            let c = try prox.client()
            try c.send("GET /dead HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try c.readResponse().status == 502)
        }
        // The upstream cuts its response short.
        for _ in 0..<10 {
            let c = try prox.client()
            try c.send("GET /reset-mid HTTP/1.1\r\nHost: a\r\n\r\n")
            _ = try? c.readResponse()
        }
        // The client resets mid-response, and mid-request-body.
        for _ in 0..<20 {
            let c = try prox.client()
            try c.send("GET /big?bytes=4000000 HTTP/1.1\r\nHost: a\r\n\r\n")
            _ = try c.readLine()
            c.reset()
        }
        for _ in 0..<10 {
            let c = try prox.client()
            try c.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "x", count: 1000))
            Thread.sleep(forTimeInterval: 0.002)
            c.reset()
        }
        // The client leaves while the upstream is still thinking.
        for _ in 0..<10 {
            let c = try prox.client()
            try c.send("GET /slow?ms=30 HTTP/1.1\r\nHost: a\r\n\r\n")
        }
        // Malformed heads, and connections that never send a byte.
        for _ in 0..<30 {
            let c = try prox.client()
            try c.send("GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
            #expect(try c.readResponse().status == 400)
        }
        for _ in 0..<50 { _ = try prox.client() }

        let alive = waitForNoneAlive(prox)
        #expect(alive.isEmpty, "still alive after every connection closed: \(alive)")
    }

    /// WebSocket tunnels: the client's handler, the upstream connection and the relay between
    /// them are all freed once either side closes, and a refused upgrade frees like any request.
    @Test func closedTunnelsFreeEverything() throws {
        let (up, prox) = try WebSocketE2ETests.rig()
        defer { prox.stop(); up.stop() }
        prox.server.trackObjects()
        let handshake = Array("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8)
        let frame: [UInt8] = [0x81, 0x80 | 2, 1, 2, 3, 4, UInt8(ascii: "h") ^ 1, UInt8(ascii: "i") ^ 2]
        for i in 0..<40 {
            let c = try prox.client()
            try c.send(handshake + frame)
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline && !(c.buffer.count > 4 && c.buffer.suffix(4) == [0x81, 2, UInt8(ascii: "h"), UInt8(ascii: "i")]) {
                guard c.fill() else { break }
            }
            #expect(String(decoding: c.buffer.prefix(12), as: UTF8.self) == "HTTP/1.1 101")
            // Half the tunnels end with a reset, half with a clean close of the client's side.
            if i % 2 == 0 { c.reset() } else { c.shutdownWrite() }
        }
        let alive = waitForNoneAlive(prox)
        #expect(alive.isEmpty, "still alive after every tunnel closed: \(alive)")
    }

    @Test func drainFreesEverything() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(Self.config, upstream: up.address, upstream2: "127.0.0.1:9", threads: 2)
        defer { prox.stop() }
        prox.server.trackObjects()
        var clients: [TestClient] = []
        for _ in 0..<20 {
            let c = try prox.client()
            try c.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try c.readResponse().status == 200)
            clients.append(c)  // idle keep-alive
        }
        var slow: [TestClient] = []
        for _ in 0..<5 {
            let c = try prox.client()
            try c.send("GET /slow?ms=100 HTTP/1.1\r\nHost: a\r\n\r\n")
            slow.append(c)
        }
        Thread.sleep(forTimeInterval: 0.02)
        #expect(prox.server.drain(timeout: .seconds(5)))
        for c in slow {
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.header("connection") == "close")
        }
        for c in clients { #expect(c.waitForClose()) }
        let alive = waitForNoneAlive(prox)
        #expect(alive.isEmpty, "still alive after drain: \(alive)")
    }
}
