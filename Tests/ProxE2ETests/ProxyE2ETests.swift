import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import ProxCore
import Testing
@testable import ProxEngine

/// End to end with real sockets on 127.0.0.1: a real upstream (NIOHTTP1), the real proxy in
/// process, a raw-socket client.
@Suite(.serialized) struct ProxyE2ETests {
    @Test func keepAliveReusesOneUpstreamConnection() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        for i in 0..<5 {
            try c.send("GET /echo/\(i) HTTP/1.1\r\nHost: example.test\r\n\r\n")
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.text.contains("target=/echo/\(i)\n"))
            #expect(r.header("x-upstream") == "test")
        }
        #expect(up.requests.withLockedValue { $0 } == 5)
        #expect(up.connections.withLockedValue { $0 } == 1)
    }

    @Test func pipelinedRequestsComeBackInOrder() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        var batch = ""
        for i in 0..<8 { batch += "GET /echo/\(i) HTTP/1.1\r\nHost: a\r\n\r\n" }
        batch += "GET /slow?ms=50 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo/last HTTP/1.1\r\nHost: a\r\n\r\n"
        try c.send(batch)
        for i in 0..<8 {
            let r = try c.readResponse()
            #expect(r.text.contains("target=/echo/\(i)\n"))
        }
        #expect(try c.readResponse().text == "slow 50\n")
        #expect(try c.readResponse().text.contains("target=/echo/last"))
    }

    /// Requests pipelined behind one the upstream is slow to answer are read up to a bound
    /// (`ClientConnectionHandler.maxBufferedPipeline`), then reading pauses and the rest stays
    /// in the kernel: the client's sends block. Without the pause Prox would read all 64 MiB.
    @Test func aPipelinedFloodBehindASlowRequestStaysInTheKernel() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let c = try TestClient(port: prox.port, timeoutSeconds: 1)
        try c.send("GET /slow?ms=4000 HTTP/1.1\r\nHost: a\r\n\r\n")
        let request = Array("GET /echo/flood HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        var chunk: [UInt8] = []
        while chunk.count < 1 << 20 { chunk += request }
        let total = 64 << 20
        var sent = 0
        // Each send waits at most the client's 1 s send timeout: a paused proxy stops taking bytes.
        flood: while sent < total {
            var off = 0
            while off < chunk.count {
                let n = chunk.withUnsafeBytes { Glibc.send(c.fd, $0.baseAddress! + off, chunk.count - off, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { break flood }
                off += n
                sent += n
            }
        }
        // Kernel buffers on loopback hold a few MiB each way; Prox holds 64 KiB and a read.
        #expect(sent < 32 << 20, "the proxy took \(sent >> 20) MiB of a pipelined flood behind a slow request")
        #expect(sent > 0)
        // The proxy still serves others meanwhile.
        let other = try prox.client()
        try other.send("GET /echo/other HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try other.readResponse().text.contains("target=/echo/other"))
    }

    @Test func forwardingHeadersAndHopByHopRemoval() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /echo HTTP/1.1\r\nHost: shop.example:8443\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s3\r\n"
                   + "Keep-Alive: timeout=5\r\nTE: trailers\r\nX-Forwarded-For: 6.6.6.6\r\nX-Kept: yes\r\n\r\n")
        let t = try c.readResponse().text
        #expect(t.contains("h:host=shop.example:8443\n"))
        #expect(t.contains("h:x-forwarded-for=127.0.0.1\n"), "untrusted peers cannot forge X-Forwarded-For")
        #expect(t.contains("h:x-forwarded-proto=http\n"))
        #expect(t.contains("h:x-forwarded-host=shop.example:8443\n"))
        #expect(t.contains("h:via=1.1 prox\n"))
        #expect(t.contains("h:x-kept=yes\n"))
        #expect(!t.contains("x-secret"))
        #expect(!t.contains("h:keep-alive"))
        #expect(!t.contains("h:te="))
    }

    @Test func chunkedRequestBodyAndChunkedResponse() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        var body = ""
        var sum: UInt64 = 0xcbf2_9ce4_8422_2325
        var req = "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        for i in 0..<20 {
            let piece = String(repeating: Character(UnicodeScalar(UInt8(97 + i))), count: 100 * (i + 1))
            body += piece
            req += String(piece.utf8.count, radix: 16) + ";ext=1\r\n" + piece + "\r\n"
        }
        sum = fnv(Array(body.utf8), sum)
        req += "0\r\nX-Trailer: dropped\r\n\r\n"
        try c.send(req)
        let r = try c.readResponse()
        #expect(r.text == "bytes=\(body.utf8.count) fnv=\(String(sum, radix: 16))\n")

        try c.send("GET /chunked?n=5000 HTTP/1.1\r\nHost: a\r\n\r\n")
        let rc = try c.readResponse()
        #expect(rc.chunked)
        #expect(rc.complete)
        #expect(rc.bodyCount == 5000)
    }

    @Test func http10ClientGetsChunkedResponseDelimitedByClose() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /chunked?n=3000 HTTP/1.0\r\nHost: a\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 200)
        #expect(!r.chunked)
        #expect(r.bodyCount == 3000)
    }

    @Test func expectContinueGets100ThenTheAnswer() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        #expect(try c.readLine() == "HTTP/1.1 100 Continue")
        #expect(try c.readLine() == "")
        try c.send("hello")
        let r = try c.readResponse()
        #expect(r.status == 200)
        #expect(r.text.hasPrefix("bytes=5 "))
    }

    @Test func largeBodiesStreamBothWaysWithBoundedMemory() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let size = 256 << 20
        let before = residentMiB()
        // Download.
        let c = try prox.client()
        try c.send("GET /big?bytes=\(size) HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try c.readResponse(keepBody: false)
        #expect(r.bodyCount == size)
        // Upload, streamed from a thread while the response is read.
        try c.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: \(size)\r\n\r\n")
        let piece = [UInt8](repeating: UInt8(ascii: "u"), count: 1 << 20)
        var sum: UInt64 = 0xcbf2_9ce4_8422_2325
        let pieceSum = { (s: UInt64) in fnv(piece, s) }
        for _ in 0..<(size >> 20) {
            try c.send(piece)
            sum = pieceSum(sum)
        }
        let u = try c.readResponse()
        #expect(u.text == "bytes=\(size) fnv=\(String(sum, radix: 16))\n")
        let growth = residentMiB() - before
        // Streaming keeps memory flat: far below the 256 MiB that went through each way.
        #expect(growth < 96, "resident memory grew by \(growth) MiB")
    }

    @Test func noRouteIs404WithRequestId() throws {
        let prox = try ProxHarness("""
        version: 1
        server: { access_log: "off" }
        listeners: [{ id: main, address: "127.0.0.1:0" }]
        routes:
          - id: only
            match: { path: { exact: /only } }
            respond: { status: 200, body: "only\\n" }
        """)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /other HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 404)
        #expect(r.header("x-request-id")?.count == 32)
        #expect(r.header("x-prox-error") == "no_route")
        try c.send("GET /only HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try c.readResponse().text == "only\n")
    }

    @Test func malformedRequestIs400AndCloses() throws {
        let prox = try ProxHarness(simpleProxyConfig, upstream: "127.0.0.1:9")
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 400)
        #expect(r.header("x-request-id") != nil)
        #expect(c.waitForClose())
    }

    @Test func connectFailureIs502WithCategory() throws {
        // A port nothing listens on: bind one, note it, close it.
        let ghost = try TestUpstream()
        let addr = ghost.address
        ghost.stop()
        let prox = try ProxHarness(simpleProxyConfig, upstream: addr)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 502)
        #expect(r.header("x-prox-error") == "upstream_connect_failed")
        #expect(r.header("x-request-id") != nil)
    }

    @Test func upstreamTimeoutIs504() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig.replacingOccurrences(of: "    endpoints:", with: "    timeouts: { response_header: 300ms }\n    endpoints:"),
                                   upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /slow?ms=3000 HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 504)
        #expect(r.header("x-prox-error") == "upstream_timeout")
    }

    @Test func upstreamResetAfterResponseStartedClosesClient() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /reset-mid HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(throws: TestError.self) { _ = try c.readResponse() }
        #expect(c.closedByPeer)
    }

    @Test func upstreamCloseBeforeResponseIs502() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("POST /close-now HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        let r = try c.readResponse()
        #expect(r.status == 502)
        #expect(r.header("x-prox-error") == "upstream_reset")
    }

    @Test func staleIdleConnectionIsRetriedOnceForIdempotentRequests() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        // The pooled connection goes stale: the upstream drops it without telling anyone
        // (simulated by closing every accepted connection now).
        up.dropConnectionsOnNextRequest()
        try c.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 200)
        #expect(up.connections.withLockedValue { $0 } == 2)
    }
}

extension ProxyE2ETests {
    @Test func listenerAtMaxConnectionsMakesNewClientsWait() throws {
        let prox = try ProxHarness("""
        version: 1
        server: { access_log: "off" }
        listeners: [{ id: main, address: "127.0.0.1:0", limits: { max_connections: 2 } }]
        routes: [{ id: all, respond: { status: 200, body: "ok" } }]
        """)
        defer { prox.stop() }
        let a = try prox.client(), b = try prox.client()
        for c in [a, b] {
            try c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try c.readResponse().status == 200)
        }
        // A third client gets through the kernel's handshake but is not accepted: no answer yet.
        let waiting = try TestClient(port: prox.port, timeoutSeconds: 1)
        try waiting.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(throws: TestError.self) { _ = try waiting.readResponse() }
        // A slot frees when a connection closes: the waiting client is accepted and answered.
        a.shutdownWrite()
        #expect(a.waitForClose())
        waiting.closedByPeer = false
        var answered = false
        for _ in 0..<10 where !answered {
            if let r = try? waiting.readResponse(), r.status == 200 { answered = true }
        }
        #expect(answered, "the waiting client is served once a slot frees")
    }
}

/// Resident set size of this process in MiB (Linux).
func residentMiB() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let pages = Int(s.split(separator: " ")[1]) ?? 0
    return pages * 4096 >> 20
}
