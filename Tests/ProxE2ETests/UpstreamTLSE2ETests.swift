import Foundation
import ProxConfig
import ProxCore
import Testing
@testable import ProxEngine

/// Upstream TLS end to end: an HTTPS upstream (swift-nio-ssl server, certificates made by the test
/// with the openssl command line), the proxy in process, a cleartext client.
@Suite struct UpstreamTLSE2ETests {
    /// One route proxying everything to `{upstream}` over TLS with the pool's `tls` lines.
    static func config(_ tls: String) -> String {
        """
        version: 1
        server: {access_log: "off"}
        listeners:
          - id: main
            address: 127.0.0.1:0
        pools:
          - id: secure
            endpoints: ["{upstream}"]
            tls:
        \(tls)
        routes:
          - id: all
            proxy: secure
        """
    }

    /// A CA, and an upstream serving a certificate it signed for `up.test` and 127.0.0.1.
    static func upstream(_ dir: URL, clientCA: String? = nil, ips: [String] = ["127.0.0.1"]) throws -> (TestUpstream, ca: (cert: String, key: String)) {
        let ca = try TestCerts.makeCA(dir, "ca", cn: "Test CA")
        let srv = try TestCerts.makeSigned(dir, "up", subject: "/CN=up.test", dns: ["up.test"], ips: ips, ca: ca)
        return (try TestUpstream(tls: .init(cert: srv.cert, key: srv.key, clientCA: clientCA)), ca)
    }

    @Test func verifiedWithSNIAndPooledConnectionsReused() throws {
        let dir = try TestCerts.directory()
        let (up, ca) = try Self.upstream(dir)
        defer { up.stop() }
        let prox = try ProxHarness(Self.config("""
                  ca: \(ca.cert)
                  sni: up.test
        """), upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        for i in 0..<5 {
            try c.send("GET /echo?\(i) HTTP/1.1\r\nHost: front.test\r\n\r\n")
            let r = try c.readResponse()
            #expect(r.status == 200, "\(r.text)")
            #expect(r.text.contains("target=/echo?\(i)\n"))
        }
        // A second client connection's requests reuse the pooled TLS connection too.
        let c2 = try prox.client()
        for _ in 0..<3 {
            try c2.send("GET /echo HTTP/1.1\r\nHost: front.test\r\n\r\n")
            #expect(try c2.readResponse().status == 200)
        }
        #expect(up.connections.withLockedValue { $0 } == 1)
        #expect(up.requests.withLockedValue { $0 } == 8)
        #expect(up.serverNamesSeen.withLockedValue { $0 } == ["up.test"])
    }

    @Test func ipEndpointWithoutSNIIsVerifiedByIPAddress() throws {
        let dir = try TestCerts.directory()
        let (up, ca) = try Self.upstream(dir)
        defer { up.stop() }
        let prox = try ProxHarness(Self.config("          ca: \(ca.cert)"), upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        // An IP address is never sent as SNI.
        #expect(up.serverNamesSeen.withLockedValue { $0 } == [nil])
    }

    @Test func certificateOfAnotherCAAnswers502WithCategory() throws {
        let dir = try TestCerts.directory()
        let (up, _) = try Self.upstream(dir)
        defer { up.stop() }
        let other = try TestCerts.makeCA(dir, "other", cn: "Other CA")
        let log = CapturedLog()
        let prox = try ProxHarness(Self.config("""
                  ca: \(other.cert)
                  sni: up.test
        """), upstream: up.address, log: log)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 502)
        #expect(r.header("x-prox-error") == "upstream_tls_failed")
        #expect(!r.text.contains("CERTIFICATE_VERIFY_FAILED"), "the reason is for the error log, not the client")
        #expect(up.requests.withLockedValue { $0 } == 0)
        let line = log.all.first { $0.hasPrefix("upstream_tls_failed") }
        #expect(line?.contains("could not be verified") == true, "\(log.all)")
        #expect(line?.contains("SNI up.test") == true)
        // The connection to the client stays usable.
        try c.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try c.readResponse().status == 502)
    }

    @Test func nameNotInCertificateAnswers502() throws {
        let dir = try TestCerts.directory()
        // No IP address in the certificate: swift-nio-ssl accepts a certificate that holds the
        // name or the peer's IP address.
        let (up, ca) = try Self.upstream(dir, ips: [])
        defer { up.stop() }
        let log = CapturedLog()
        let prox = try ProxHarness(Self.config("""
                  ca: \(ca.cert)
                  sni: other.test
        """), upstream: up.address, log: log)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 502)
        #expect(r.header("x-prox-error") == "upstream_tls_failed")
        #expect(log.all.contains { $0.contains("not valid for the name 'other.test'") }, "\(log.all)")
    }

    @Test func insecureSkipVerifyAcceptsAnyCertificate() throws {
        let dir = try TestCerts.directory()
        let (up, _) = try Self.upstream(dir)
        defer { up.stop() }
        let prox = try ProxHarness(Self.config("""
                  insecure_skip_verify: true
                  sni: anything.test
        """), upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        #expect(up.serverNamesSeen.withLockedValue { $0 } == ["anything.test"])
    }

    @Test func upstreamRequiringClientCertificate() throws {
        let dir = try TestCerts.directory()
        let clientCA = try TestCerts.makeCA(dir, "client-ca", cn: "Client CA")
        let (up, ca) = try Self.upstream(dir, clientCA: clientCA.cert)
        defer { up.stop() }
        let client = try TestCerts.makeSigned(dir, "prox-client", subject: "/CN=prox", ca: clientCA, client: true)
        let with = try ProxHarness(Self.config("""
                  ca: \(ca.cert)
                  cert: \(client.cert)
                  key: \(client.key)
        """), upstream: up.address)
        defer { with.stop() }
        let c = try with.client()
        try c.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try c.readResponse().status == 200)

        // Without the client certificate the upstream refuses the handshake.
        let log = CapturedLog()
        let without = try ProxHarness(Self.config("          ca: \(ca.cert)"), upstream: up.address, log: log)
        defer { without.stop() }
        let c2 = try without.client()
        try c2.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c2.readResponse()
        #expect(r.status == 502)
        #expect(r.header("x-prox-error") == "upstream_tls_failed")
        // TLS 1.3: the refusal (an alert) arrives after the client's side of the handshake, as the
        // request goes out; still a TLS failure, with the reason in the log.
        #expect(log.all.contains { $0.hasPrefix("upstream_tls_failed") && $0.contains("may require a client certificate") }, "\(log.all)")
    }

    @Test func cleartextUpstreamIsATLSFailure() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let log = CapturedLog()
        let prox = try ProxHarness(Self.config("          insecure_skip_verify: true"), upstream: up.address, log: log)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 502)
        #expect(r.header("x-prox-error") == "upstream_tls_failed")
        #expect(log.all.contains { $0.contains("did not answer with TLS") }, "\(log.all)")
    }

    @Test func handshakeThatNeverEndsIsAConnectTimeout() throws {
        // A listener that accepts and never answers the ClientHello.
        let silent = try TestSilentServer()
        defer { silent.stop() }
        let prox = try ProxHarness("""
        version: 1
        server: {access_log: "off"}
        listeners: [{id: main, address: 127.0.0.1:0}]
        pools:
          - id: secure
            endpoints: ["{upstream}"]
            timeouts: {connect: 300ms}
            tls: true
        routes: [{id: all, proxy: secure}]
        """, upstream: "127.0.0.1:\(silent.port)")
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 504)
        #expect(r.header("x-prox-error") == "upstream_connect_timeout")
    }

    @Test func reloadKeepingTLSSettingsKeepsPooledConnection() throws {
        let dir = try TestCerts.directory()
        let (up, ca) = try Self.upstream(dir)
        defer { up.stop() }
        let yaml = Self.config("""
                  ca: \(ca.cert)
                  sni: up.test
        """)
        let prox = try ProxHarness(yaml, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        try prox.reload(yaml, upstream: up.address)
        try c.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        #expect(up.connections.withLockedValue { $0 } == 1)
        // Other TLS settings (no SNI now): a connection of their own.
        try prox.reload(Self.config("          ca: \(ca.cert)"), upstream: up.address)
        try c.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        #expect(up.connections.withLockedValue { $0 } == 2)
    }
}

/// Accepts TCP connections and never writes: a peer whose TLS handshake never completes.
final class TestSilentServer: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private var accepted: [Int32] = []
    private let thread: Thread

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } } == 0
        guard ok, listen(fd, 16) == 0 else { throw TestError("cannot listen") }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        // Accepted sockets are kept open (and never read) until the listener closes.
        thread = Thread {
            var held: [Int32] = []
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { break }
                held.append(c)
            }
            for c in held { close(c) }
        }
        thread.start()
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
