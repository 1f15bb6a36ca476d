import Foundation
import NIOCore
import NIOWebSocket
import Testing
@testable import ProxEngine

/// WebSocket pass-through end to end: a real NIOWebSocket echo upstream, the proxy in process,
/// a real NIOWebSocket client (which checks `Sec-WebSocket-Accept`).
@Suite struct WebSocketE2ETests {
    static func config(accessLog: String = "off") -> String {
        """
        version: 1
        server:
          access_log: "\(accessLog)"
        listeners:
          - id: main
            address: 127.0.0.1:0
        pools:
          - id: ws
            endpoints: ["{upstream}"]
        routes:
          - id: no-ws
            match: {path: {prefix: /nows}}
            websocket: false
            proxy: ws
          - id: ws
            chain:
              - headers:
                  request:
                    set: {X-Chain: "yes"}
                  response:
                    set: {X-Proxied: "prox"}
            websocket: {idle_timeout: 30s}
            proxy: ws
        """
    }

    static func rig(accessLog: String = "off") throws -> (WebSocketEchoServer, ProxHarness) {
        let up = try WebSocketEchoServer()
        do {
            return (up, try ProxHarness(config(accessLog: accessLog), upstream: up.address))
        } catch {
            up.stop()
            throw error
        }
    }

    /// `n` pseudo-random bytes (a byte-at-a-time loop over a ByteBuffer takes minutes for 16 MiB
    /// in a debug build: fill raw memory).
    static func message(_ n: Int, seed: UInt64) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeWithUnsafeMutableBytes(minimumWritableBytes: n) { p in
            var x = seed | 1
            for i in 0..<n {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17
                p[i] = UInt8(truncatingIfNeeded: x)
            }
            return n
        }
        return b
    }

    @Test func echoesTextAndBinaryUpTo16MiBAndTheChainRanOnTheHandshake() throws {
        let (up, prox) = try Self.rig()
        defer { prox.stop(); up.stop() }
        let c = try WebSocketTestClient(port: prox.port, path: "/chat",
                                        headers: [("Keep-Alive", "timeout=5"), ("X-Hop", "1"), ("Connection", "X-Hop")])
        defer { c.close() }
        #expect(c.isUpgraded)
        // The handshake went through the chain, with the upgrade's hop-by-hop lines only.
        let seen = try #require(up.requests.withLockedValue { $0.last })
        func header(_ n: String) -> [String] { seen.filter { $0.0 == n }.map(\.1) }
        #expect(header("x-chain") == ["yes"])
        #expect(header("upgrade") == ["websocket"])
        #expect(header("connection") == ["upgrade"])
        #expect(header("keep-alive").isEmpty && header("x-hop").isEmpty)
        #expect(header("sec-websocket-key").count == 1 && header("sec-websocket-version") == ["13"])

        try c.send(.text, ByteBuffer(string: "hello"))
        let hello = try c.receive()
        #expect(hello.opcode == .text && String(buffer: hello.unmaskedData) == "hello")
        for size in [1, 125, 126, 65_535, 65_536, 1 << 20, 16 << 20] {
            let m = Self.message(size, seed: UInt64(size))
            try c.send(.binary, m)
            let back = try c.receive()
            #expect(back.opcode == .binary)
            #expect(back.unmaskedData.readableBytes == size)
            #expect(back.unmaskedData == m, "binary \(size) bytes")
        }
        let text = String(repeating: "ü-text-", count: (16 << 20) / 8)
        try c.send(.text, ByteBuffer(string: text))
        let t = try c.receive()
        #expect(t.opcode == .text && t.unmaskedData.readableBytes == text.utf8.count && String(buffer: t.unmaskedData) == text)
    }

    @Test func aCloseFromTheClientPropagatesAndIsLogged() throws {
        let dir = try TestCerts.directory()
        let log = dir.appendingPathComponent("access.log").path
        let (up, prox) = try Self.rig(accessLog: log)
        defer { prox.stop(); up.stop() }
        let c = try WebSocketTestClient(port: prox.port, path: "/chat")
        #expect(c.isUpgraded)
        try c.send(.text, ByteBuffer(string: "12345"))
        _ = try c.receive()
        try c.sendClose()
        // The upstream answers the close and closes; the proxy closes the client after it.
        let close = try c.receive()
        #expect(close.opcode == .connectionClose)
        #expect(c.waitForClose())
        // One access-log line for the tunnel, on its close: status 101, bytes both ways.
        var line: [String: Any]?
        let deadline = Date().addingTimeInterval(5)
        while line == nil && Date() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            line = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .first { $0["upgrade"] as? String == "websocket" }
            usleep(20_000)
        }
        let l = try #require(line, "no tunnel line in the access log")
        #expect(l["status"] as? Int == 101)
        #expect(l["route"] as? String == "ws")
        // Client to upstream: a 5-byte text frame (2 + 4 mask + 5) and the close (2 + 4 + 2).
        #expect(l["bytes_in"] as? Int == 19)
        // Upstream to client: the 101 head, the echo (2 + 5) and the close (2 + 2).
        #expect((l["bytes_out"] as? Int ?? 0) > 11)
        #expect(l["duration_ms"] != nil)
    }

    @Test func aCloseFromTheUpstreamPropagates() throws {
        let (up, prox) = try Self.rig()
        defer { prox.stop(); up.stop() }
        let c = try WebSocketTestClient(port: prox.port, path: "/server-close")
        #expect(c.isUpgraded)
        // The upstream starts the closing handshake; the client answers; the upstream closes the
        // TCP connection and the proxy the client's.
        let close = try c.receive()
        #expect(close.opcode == .connectionClose)
        #expect(close.unmaskedData.getInteger(at: close.unmaskedData.readerIndex, as: UInt16.self) == 1001)
        try c.sendClose()
        #expect(c.waitForClose())
    }

    @Test func aRouteWithUpgradesDisabledGetsAPlainAnswer() throws {
        let (up, prox) = try Self.rig()
        defer { prox.stop(); up.stop() }
        let c = try WebSocketTestClient(port: prox.port, path: "/nows")
        defer { c.close() }
        #expect(!c.isUpgraded)
        let answer = try #require(c.answer.withLockedValue { $0 })
        #expect(answer.0 == 200)
        #expect(answer.1 == "plain upgrade=none\n", "the upstream saw no Upgrade")
    }

    @Test func aRefusedUpgradeIsProxiedAsANormalResponseOnAKeptConnection() throws {
        let (up, prox) = try Self.rig()
        defer { prox.stop(); up.stop() }
        let c = try WebSocketTestClient(port: prox.port, path: "/deny")
        defer { c.close() }
        #expect(!c.isUpgraded)
        let answer = try #require(c.answer.withLockedValue { $0 })
        #expect(answer.0 == 403)
        #expect(answer.1 == "plain upgrade=websocket\n")
        // The raw way: the connection stays an HTTP one, the next request works.
        let raw = try prox.client()
        try raw.send("GET /deny HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        let r1 = try raw.readResponse()
        #expect(r1.status == 403)
        #expect(r1.header("x-proxied") == "prox")
        try raw.send("GET /nows HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try raw.readResponse().status == 200)
    }

    @Test func framesRightAfterTheHandshakeGoThrough() throws {
        // A raw client that sends a frame in the same write as its handshake, and reads the 101
        // and the echo: the bytes past each head reach the other side.
        let (up, prox) = try Self.rig()
        defer { prox.stop(); up.stop() }
        let raw = try prox.client()
        var frame: [UInt8] = [0x81, 0x80 | 2, 1, 2, 3, 4]
        frame += [UInt8(ascii: "h") ^ 1, UInt8(ascii: "i") ^ 2]
        try raw.send(Array("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8) + frame)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline && !(raw.buffer.count > 4 && raw.buffer.suffix(4) == [0x81, 2, UInt8(ascii: "h"), UInt8(ascii: "i")]) {
            guard raw.fill() else { break }
        }
        let text = String(decoding: raw.buffer, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), "\(text)")
        #expect(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        #expect(text.contains("Connection: upgrade\r\nUpgrade: websocket\r\n"))
        #expect(text.contains("X-Proxied: prox\r\n"), "the response side of the chain ran on the 101")
        #expect(raw.buffer.suffix(4) == [0x81, 2, UInt8(ascii: "h"), UInt8(ascii: "i")])
    }
}
