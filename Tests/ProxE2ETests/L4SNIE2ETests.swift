import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing
@testable import ProxEngine

/// A TLS upstream with its own certificate: answers every request on a connection with
/// `HTTP/1.1 200` and the body `from-upstream <n>` (n counts its answers).
final class TLSUpstream: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel: any Channel
    var address: String { "127.0.0.1:\(channel.localAddress!.port!)" }

    final class Answer: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        var pending = ""
        var count = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            pending += String(buffer: unwrapInboundIn(data))
            while let end = pending.range(of: "\r\n\r\n") {
                pending.removeSubrange(..<end.upperBound)
                count += 1
                let body = "from-upstream \(count)"
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")),
                                      promise: nil)
            }
        }
    }

    init(cert: String, key: String) throws {
        let config = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        let context = try NIOSSLContext(configuration: config)
        channel = try ServerBootstrap(group: group)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try ch.pipeline.syncOperations.addHandler(Answer())
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// L4 SNI dispatch end to end: a TLS listener with `l4_routes`, a TLS upstream with its own
/// certificate, swift-nio-ssl clients, raw sockets for broken ClientHellos.
@Suite struct L4SNIE2ETests {
    static func config(cert: (cert: String, key: String), l4: String) -> String {
        """
        version: 1
        server:
          access_log: "off"
        listeners:
          - id: edge
            address: 127.0.0.1:0
            timeouts: {client_hello: 400ms}
            tls:
              certificates: [{cert: \(cert.cert), key: \(cert.key)}]
            l4_routes:
        \(l4)
        pools:
          - id: tls-backend
            endpoints: ["{upstream}"]
        routes:
          - id: local
            respond: {body: "local {host} {scheme}"}
        """
    }

    static let passAndDrop = """
              - id: passthrough
                sni: [pass.test, "*.pass.test"]
                pass: tls-backend
              - id: blocked
                sni: [drop.test]
                no_sni: true
                drop: true
    """

    static let dropOnly = """
              - id: blocked
                sni: [drop.test, pass.test]
                drop: true
    """

    struct Rig {
        let upstream: TLSUpstream
        let prox: ProxHarness
        let dir: URL
        let proxCert: (cert: String, key: String)
        func stop() { prox.stop(); upstream.stop() }
    }

    static func rig(_ l4: String = passAndDrop) throws -> Rig {
        let dir = try TestCerts.directory()
        let upCert = try TestCerts.make(dir, "upstream", cn: "upstream-cert", dns: ["pass.test", "*.pass.test"])
        let proxCert = try TestCerts.make(dir, "prox", cn: "prox-cert", dns: ["local.test"])
        let up = try TLSUpstream(cert: upCert.cert, key: upCert.key)
        do {
            let prox = try ProxHarness(config(cert: proxCert, l4: l4), upstream: up.address)
            return Rig(upstream: up, prox: prox, dir: dir, proxCert: proxCert)
        } catch {
            up.stop()
            throw error
        }
    }

    @Test func passRelaysTheTLSStreamToTheUpstreamWhoseCertificateAnswers() throws {
        let rig = try Self.rig()
        defer { rig.stop() }
        for sni in ["pass.test", "Www.Pass.Test"] {
            let c = try TLSTestClient(port: rig.prox.port, sni: sni)
            #expect(c.peerCommonName == "upstream-cert", "SNI \(sni): the upstream's own certificate, not Prox's")
            let r1 = try c.get("/")
            #expect(r1.text == "from-upstream 1")
            // The same TLS session, on through the relay.
            #expect(try c.get("/again").text == "from-upstream 2")
            c.close()
        }
    }

    @Test func nonMatchingSNITerminatesHereOnTheSamePort() throws {
        let rig = try Self.rig()
        defer { rig.stop() }
        for sni in ["local.test", "a.b.pass.test", "other.test"] {
            let c = try TLSTestClient(port: rig.prox.port, sni: sni)
            #expect(c.peerCommonName == "prox-cert", "SNI \(sni)")
            let r = try c.get("/", host: "local.test")
            #expect(r.status == 200)
            #expect(r.text == "local local.test https")
            c.close()
        }
    }

    @Test func dropClosesAndNoSNIIsMatchable() throws {
        let rig = try Self.rig()
        defer { rig.stop() }
        #expect(throws: (any Error).self) { try TLSTestClient(port: rig.prox.port, sni: "drop.test") }
        #expect(throws: (any Error).self) { try TLSTestClient(port: rig.prox.port, sni: nil) }
        // The listener goes on serving.
        #expect(try TLSTestClient(port: rig.prox.port, sni: "local.test").get("/").status == 200)
    }

    @Test func truncatedOrMalformedClientHellosCloseCleanly() throws {
        let rig = try Self.rig()
        defer { rig.stop() }
        let hello = Self.clientHelloBytes(sni: "pass.test")
        // Truncated, then the client's FIN: closed at once.
        let a = try TestClient(port: rig.prox.port, timeoutSeconds: 5)
        try a.send(Array(hello.prefix(40)))
        a.shutdownWrite()
        #expect(Self.closesSoon(a))
        // Truncated and left hanging: closed by `client_hello` (400 ms here).
        let b = try TestClient(port: rig.prox.port, timeoutSeconds: 5)
        try b.send(Array(hello.prefix(40)))
        #expect(Self.closesSoon(b))
        // Not TLS at all.
        let c = try TestClient(port: rig.prox.port, timeoutSeconds: 5)
        try c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(Self.closesSoon(c))
        #expect(c.buffer.isEmpty, "nothing is answered")
        // A record announcing more than the bound.
        let d = try TestClient(port: rig.prox.port, timeoutSeconds: 5)
        try d.send([22, 3, 1, 0x40, 0x00] + [UInt8](repeating: 1, count: 16))
        #expect(Self.closesSoon(d))
        #expect(try TLSTestClient(port: rig.prox.port, sni: "pass.test").get("/").status == 200)
    }

    @Test func aReloadChangesTheL4RoutesForNewConnections() throws {
        let rig = try Self.rig()
        defer { rig.stop() }
        let before = try TLSTestClient(port: rig.prox.port, sni: "pass.test")
        #expect(before.peerCommonName == "upstream-cert")
        #expect(try before.get("/").status == 200)
        // pass.test is dropped from now on; www.pass.test is no L4 route's: terminated here.
        try rig.prox.reload(Self.config(cert: rig.proxCert, l4: Self.dropOnly), upstream: rig.upstream.address)
        #expect(throws: (any Error).self) { try TLSTestClient(port: rig.prox.port, sni: "pass.test") }
        let now = try TLSTestClient(port: rig.prox.port, sni: "www.pass.test")
        #expect(now.peerCommonName == "prox-cert")
        #expect(try now.get("/", host: "www.pass.test").text == "local www.pass.test https")
        // The tunnel made before the reload carries on.
        #expect(try before.get("/x").text == "from-upstream 2")
    }

    /// The peer closed well before the client's 5 s receive timeout (which also ends `waitForClose`).
    static func closesSoon(_ c: TestClient) -> Bool {
        let start = Date()
        return c.waitForClose() && Date().timeIntervalSince(start) < 3
    }

    /// A ClientHello as a real client sends it: the first flight of a swift-nio-ssl client,
    /// caught on a socket.
    static func clientHelloBytes(sni: String) -> [UInt8] {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
        listen(listener, 1)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let t = Thread { _ = try? TLSTestClient(port: port, sni: sni) }
        t.start()
        let conn = accept(listener, nil, nil)
        defer { close(conn) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var out: [UInt8] = []
        var tmp = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = tmp.withUnsafeMutableBytes { recv(conn, $0.baseAddress, 4096, 0) }
            if n <= 0 { break }
            out += tmp[0..<n]
            if case .clientHello = out.withUnsafeBytes({ ClientHelloParser.parse($0, maxBytes: 1 << 16) }) { break }
        }
        return out
    }
}
