import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Certificates made at run time with the `openssl` command line (scripts/setup.sh installs it):
/// EC P-256 keys, self-signed, in a fresh temporary directory per test.
enum TestCerts {
    static func directory() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("prox-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    static func openssl(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["openssl"] + args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let msg = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            throw TestError("openssl \(args.joined(separator: " ")) failed: \(String(decoding: msg, as: UTF8.self))")
        }
    }

    /// `NAME.crt` and `NAME.key` in `dir`: common name `cn`, DNS names `dns` (none: no
    /// subjectAltName), valid from now for `days` days; `days` < 0 makes one that has expired.
    @discardableResult
    static func make(_ dir: URL, _ name: String, cn: String, dns: [String] = [], days: Int = 365) throws -> (cert: String, key: String) {
        let cert = dir.appendingPathComponent("\(name).crt").path, key = dir.appendingPathComponent("\(name).key").path
        if days > 0 {
            var args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-subj", "/CN=\(cn)", "-days", String(days)]
            if !dns.isEmpty { args += ["-addext", "subjectAltName=" + dns.map { "DNS:\($0)" }.joined(separator: ",")] }
            try openssl(args)
        } else {
            let csr = dir.appendingPathComponent("\(name).csr").path
            try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
            try openssl(["req", "-new", "-key", key, "-subj", "/CN=\(cn)", "-out", csr])
            try openssl(["x509", "-req", "-in", csr, "-signkey", key, "-days", String(days), "-out", cert])
            try FileManager.default.removeItem(atPath: csr)
        }
        return (cert, key)
    }
}

extension TestCerts {
    /// A CA: `NAME.crt` (self-signed, CA:TRUE) and `NAME.key`.
    static func makeCA(_ dir: URL, _ name: String, cn: String) throws -> (cert: String, key: String) {
        let cert = dir.appendingPathComponent("\(name).crt").path, key = dir.appendingPathComponent("\(name).key").path
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                     "-subj", "/CN=\(cn)", "-days", "365", "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        return (cert, key)
    }

    /// A certificate signed by `ca`: subject `subject` (`/CN=x/O=y`), DNS names and IP addresses
    /// in its subjectAltName, for servers (`client: false`) or clients.
    @discardableResult
    static func makeSigned(_ dir: URL, _ name: String, subject: String, dns: [String] = [], ips: [String] = [],
                           ca: (cert: String, key: String), client: Bool = false) throws -> (cert: String, key: String) {
        let cert = dir.appendingPathComponent("\(name).crt").path, key = dir.appendingPathComponent("\(name).key").path
        let csr = dir.appendingPathComponent("\(name).csr").path, ext = dir.appendingPathComponent("\(name).ext").path
        try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
        try openssl(["req", "-new", "-key", key, "-subj", subject, "-out", csr])
        var lines = ["basicConstraints=CA:FALSE", "extendedKeyUsage=" + (client ? "clientAuth" : "serverAuth")]
        let san = dns.map { "DNS:\($0)" } + ips.map { "IP:\($0)" }
        if !san.isEmpty { lines.append("subjectAltName=" + san.joined(separator: ",")) }
        try lines.joined(separator: "\n").write(toFile: ext, atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-days", "365",
                     "-extfile", ext, "-out", cert])
        return (cert, key)
    }
}

/// A TLS client for the tests, on SwiftNIO + swift-nio-ssl: connects, completes the handshake
/// (or throws its failure), then sends raw request bytes and reads Content-Length responses.
/// The peer's certificate is not verified (the tests' certificates are self-signed); tests look
/// at its common name to see which certificate the proxy chose.
final class TLSTestClient: @unchecked Sendable {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel: any Channel
    let collector: Collector

    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let handshake: EventLoopPromise<Void>
        let bytes = NIOLockedValueBox<[UInt8]>([])
        let closed = NIOLockedValueBox(false)
        let negotiated = NIOLockedValueBox<String?>(nil)
        init(_ p: EventLoopPromise<Void>) { handshake = p }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .handshakeCompleted(let p)? = event as? TLSUserEvent {
                negotiated.withLockedValue { $0 = p }
                handshake.succeed(())
            }
            context.fireUserInboundEventTriggered(event)
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let b = unwrapInboundIn(data)
            bytes.withLockedValue { $0 += b.readableBytesView }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            handshake.fail(error)
            context.close(promise: nil)
        }
        func channelInactive(context: ChannelHandlerContext) {
            closed.withLockedValue { $0 = true }
            handshake.fail(TestError("closed before the handshake completed"))
        }
    }

    init(port: Int, sni: String?, minVersion: TLSVersion = .tlsv1, maxVersion: TLSVersion? = nil,
         clientCertificate: (cert: String, key: String)? = nil) throws {
        var config = TLSConfiguration.makeClientConfiguration()
        if let c = clientCertificate {
            config.certificateChain = try NIOSSLCertificate.fromPEMFile(c.cert).map { .certificate($0) }
            config.privateKey = .privateKey(try NIOSSLPrivateKey(file: c.key, format: .pem))
        }
        config.certificateVerification = .none
        config.minimumTLSVersion = minVersion
        config.maximumTLSVersion = maxVersion
        if maxVersion == .tlsv1 || maxVersion == .tlsv11 {
            // What such a client offers: the suites of those versions (CBC).
            config.cipherSuites = "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA"
        }
        config.applicationProtocols = ["http/1.1"]
        let context = try NIOSSLContext(configuration: config)
        let promise = Self.group.next().makePromise(of: Void.self)
        let collector = Collector(promise)
        self.collector = collector
        do {
            channel = try ClientBootstrap(group: promise.futureResult.eventLoop)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: sni))
                        try ch.pipeline.syncOperations.addHandler(collector)
                    }
                }
                .connect(host: "127.0.0.1", port: port).wait()
        } catch {
            promise.fail(error)  // never connected: nobody else completes it
            throw error
        }
        do {
            try promise.futureResult.wait()
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }

    var tlsVersion: TLSVersion? { try? channel.nioSSL_tlsVersion().wait() }
    /// The protocol ALPN settled on (nil: none).
    var alpn: String? { collector.negotiated.withLockedValue { $0 } }
    /// The common name of the certificate the proxy presented.
    var peerCommonName: String? {
        (try? channel.nioSSL_peerCertificate().wait())??.subjectName.first { $0.type == .commonName }?.value
    }

    func send(_ s: String) throws {
        var b = channel.allocator.buffer(capacity: s.utf8.count)
        b.writeString(s)
        try channel.writeAndFlush(b).wait()
    }

    /// One response framed by Content-Length (what the tests' routes and upstream send).
    func readResponse(timeout: TimeInterval = 10) throws -> TestResponse {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let taken: TestResponse? = collector.bytes.withLockedValue { buf in
                guard let end = buf.indices.dropLast(3).first(where: { buf[$0] == 13 && buf[$0 + 1] == 10 && buf[$0 + 2] == 13 && buf[$0 + 3] == 10 }) else { return nil }
                let head = String(decoding: buf[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
                let parts = head[0].split(separator: " ", maxSplits: 2)
                var r = TestResponse(status: parts.count > 1 ? Int(parts[1]) ?? 0 : 0, headers: [])
                r.statusLine = head[0]
                for l in head.dropFirst() {
                    guard let c = l.firstIndex(of: ":") else { continue }
                    r.headers.append((String(l[..<c]), String(l[l.index(after: c)...]).trimmingCharacters(in: .whitespaces)))
                }
                let length = r.header("content-length").flatMap { Int($0) } ?? 0
                guard buf.count >= end + 4 + length else { return nil }
                r.body = Array(buf[(end + 4)..<(end + 4 + length)])
                r.bodyCount = length
                r.complete = true
                buf.removeFirst(end + 4 + length)
                return r
            }
            if let r = taken { return r }
            if collector.closed.withLockedValue({ $0 }) { throw TestError("connection closed before a whole response") }
            usleep(2_000)
        }
        throw TestError("no response within \(timeout) s")
    }

    func get(_ path: String, host: String = "test") throws -> TestResponse {
        try send("GET \(path) HTTP/1.1\r\nHost: \(host)\r\n\r\n")
        return try readResponse()
    }

    func close() { try? channel.close().wait() }
}
