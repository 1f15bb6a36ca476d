import Foundation
import NIOSSL
import ProxConfig
import ProxCore
import ProxTLS
import Testing
@testable import ProxEngine

/// Downstream TLS end to end: real sockets on 127.0.0.1, certificates made by the test with the
/// openssl command line, the proxy in process, swift-nio-ssl clients.
@Suite struct TLSE2ETests {
    /// A TLS listener (certificates from `tls`), a route answering with `{scheme}`, and a route
    /// proxying `/up/` to `{upstream}`.
    static func config(tls: String, minVersion: String = "1.2") -> String {
        """
        version: 1
        server:
          access_log: "off"
        listeners:
          - id: secure
            address: 127.0.0.1:0
            tls:
              min_version: "\(minVersion)"
        \(tls)
        pools:
          - id: backend
            endpoints: ["{upstream}"]
        routes:
          - id: up
            match: {path: {prefix: /up/}}
            proxy: backend
          - id: scheme
            respond: {body: "scheme={scheme}\\n"}
        """
    }

    static func certs(_ list: [(cert: String, key: String, extra: String)]) -> String {
        "      certificates:\n" + list.map { c in
            "        - cert: \(c.cert)\n          key: \(c.key)\n" + (c.extra.isEmpty ? "" : "          \(c.extra)\n")
        }.joined()
    }

    @Test func sniSelectsExactWildcardAndDefault() throws {
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "cert-a", dns: ["a.test", "www.a.test"])
        let b = try TestCerts.make(dir, "b", cn: "cert-b", dns: ["*.b.test"])
        let c = try TestCerts.make(dir, "c", cn: "cert-c", dns: ["c.test"])
        let prox = try ProxHarness(Self.config(tls: Self.certs([(a.cert, a.key, ""), (b.cert, b.key, ""), (c.cert, c.key, "default: true")])))
        defer { prox.stop() }
        let cases: [(String?, String)] = [
            ("a.test", "cert-a"), ("WWW.A.Test", "cert-a"), ("x.b.test", "cert-b"),
            ("y.x.b.test", "cert-c"),   // a wildcard covers one label
            ("b.test", "cert-c"), ("c.test", "cert-c"), ("unknown.test", "cert-c"), (nil, "cert-c"),
        ]
        for (sni, expected) in cases {
            let client = try TLSTestClient(port: prox.port, sni: sni)
            #expect(client.peerCommonName == expected, "SNI \(sni ?? "none")")
            #expect(client.alpn == "http/1.1")
            let r = try client.get("/")
            #expect(r.status == 200)
            #expect(r.text == "scheme=https\n")
            client.close()
        }
    }

    @Test func tls13NegotiatedTls12AcceptedTls10Refused() throws {
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "cert-a", dns: ["a.test"])
        let prox = try ProxHarness(Self.config(tls: Self.certs([(a.cert, a.key, "")])))
        defer { prox.stop() }
        let modern = try TLSTestClient(port: prox.port, sni: "a.test")
        #expect(modern.tlsVersion == .tlsv13)
        #expect(try modern.get("/").status == 200)
        modern.close()
        let v12 = try TLSTestClient(port: prox.port, sni: "a.test", maxVersion: .tlsv12)
        #expect(v12.tlsVersion == .tlsv12)
        #expect(try v12.get("/").status == 200)
        v12.close()
        #expect(throws: (any Error).self) { try TLSTestClient(port: prox.port, sni: "a.test", maxVersion: .tlsv1) }
        #expect(throws: (any Error).self) { try TLSTestClient(port: prox.port, sni: "a.test", maxVersion: .tlsv11) }
        // The listener still serves after refusing them.
        #expect(try TLSTestClient(port: prox.port, sni: "a.test").get("/").status == 200)
    }

    @Test func minVersion13RefusesTls12() throws {
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "cert-a", dns: ["a.test"])
        let prox = try ProxHarness(Self.config(tls: Self.certs([(a.cert, a.key, "")]), minVersion: "1.3"))
        defer { prox.stop() }
        #expect(throws: (any Error).self) { try TLSTestClient(port: prox.port, sni: "a.test", maxVersion: .tlsv12) }
        let c = try TLSTestClient(port: prox.port, sni: "a.test")
        #expect(c.tlsVersion == .tlsv13)
        #expect(try c.get("/").status == 200)
    }

    @Test func upstreamSeesForwardedProtoHTTPS() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "cert-a", dns: ["a.test"])
        let prox = try ProxHarness(Self.config(tls: Self.certs([(a.cert, a.key, "")])), upstream: up.address)
        defer { prox.stop() }
        let c = try TLSTestClient(port: prox.port, sni: "a.test")
        // Keep-alive: two requests on the one TLS connection.
        for _ in 0..<2 {
            let r = try c.get("/up/echo", host: "a.test")
            #expect(r.status == 200)
            #expect(r.text.contains("h:x-forwarded-proto=https\n"), "\(r.text)")
            #expect(r.text.contains("h:host=a.test\n"))
        }
        // A client's own X-Forwarded-Proto is replaced (127.0.0.1 is not a trusted proxy here).
        try c.send("GET /up/echo HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Proto: http\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.text.contains("h:x-forwarded-proto=https\n") && !r.text.contains("=http\n"), "\(r.text)")
    }

    @Test func reloadSwapsCertificateForNewConnectionsOnly() throws {
        let dir = try TestCerts.directory()
        let v1 = try TestCerts.make(dir, "v1", cn: "cert-v1", dns: ["a.test"])
        let v2 = try TestCerts.make(dir, "v2", cn: "cert-v2", dns: ["a.test"])
        let prox = try ProxHarness(Self.config(tls: Self.certs([(v1.cert, v1.key, "")])))
        defer { prox.stop() }
        let old = try TLSTestClient(port: prox.port, sni: "a.test")
        #expect(old.peerCommonName == "cert-v1")
        #expect(try old.get("/").status == 200)

        try prox.reload(Self.config(tls: Self.certs([(v2.cert, v2.key, "")])), upstream: "127.0.0.1:9")
        let new = try TLSTestClient(port: prox.port, sni: "a.test")
        #expect(new.peerCommonName == "cert-v2")
        #expect(try new.get("/").status == 200)
        // The connection opened before the reload keeps working, on its own certificate.
        for _ in 0..<3 { #expect(try old.get("/").status == 200) }
        #expect(old.peerCommonName == "cert-v1")

        // A reload naming a certificate that expired is refused; the running config keeps serving.
        let dead = try TestCerts.make(dir, "dead", cn: "cert-dead", dns: ["a.test"], days: -1)
        #expect(throws: (any Error).self) {
            try prox.reload(Self.config(tls: Self.certs([(dead.cert, dead.key, "")])), upstream: "127.0.0.1:9")
        }
        let after = try TLSTestClient(port: prox.port, sni: "a.test")
        #expect(after.peerCommonName == "cert-v2")
        #expect(try after.get("/").status == 200)
        #expect(try old.get("/").status == 200)
    }

    @Test func certificatesDirServesEveryPair() throws {
        let dir = try TestCerts.directory()
        try TestCerts.make(dir, "10-shop", cn: "cert-shop", dns: ["shop.test"])
        try TestCerts.make(dir, "20-api", cn: "cert-api", dns: ["*.api.test"])
        let prox = try ProxHarness(Self.config(tls: "      certificates_dir: \(dir.path)"))
        defer { prox.stop() }
        #expect(try TLSTestClient(port: prox.port, sni: "shop.test").peerCommonName == "cert-shop")
        #expect(try TLSTestClient(port: prox.port, sni: "v1.api.test").peerCommonName == "cert-api")
        // No SNI: the first file by name.
        #expect(try TLSTestClient(port: prox.port, sni: nil).peerCommonName == "cert-shop")
    }

    @Test func cleartextListenerBesideTLSOneStaysHTTP() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "cert-a", dns: ["a.test"])
        let yaml = """
        version: 1
        server: {access_log: "off"}
        listeners:
          - id: plain
            address: 127.0.0.1:0
          - id: secure
            address: 127.0.0.1:0
            tls: {certificates: [{cert: \(a.cert), key: \(a.key)}]}
        pools: [{id: backend, endpoints: ["{upstream}"]}]
        routes:
          - id: all
            proxy: backend
        """
        let prox = try ProxHarness(yaml, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try c.readResponse().text.contains("h:x-forwarded-proto=http\n"))
        // TLS bytes sent to the cleartext listener are a malformed request: 400 and closed.
        #expect(throws: (any Error).self) { try TLSTestClient(port: prox.port, sni: "a.test") }
        let tlsPort = prox.server.boundPorts[1]
        let t = try TLSTestClient(port: tlsPort, sni: "a.test")
        #expect(try t.get("/echo").text.contains("h:x-forwarded-proto=https\n"))
    }
}

/// SNI selection rules, without sockets.
@Suite struct SNITableTests {
    @Test func exactThenOneLabelWildcardThenDefault() {
        let t = SNITable(names: [["a.example.com"], ["*.example.com"], ["b.example.com", "*.b.example.com"], []], defaultIndex: 3)
        #expect(t.select("a.example.com") == TLSSelection(index: 0, reason: .exact("a.example.com")))
        #expect(t.select("A.Example.COM.") == TLSSelection(index: 0, reason: .exact("a.example.com")))
        #expect(t.select("x.example.com") == TLSSelection(index: 1, reason: .wildcard("*.example.com")))
        #expect(t.select("b.example.com").index == 2)
        #expect(t.select("x.b.example.com") == TLSSelection(index: 2, reason: .wildcard("*.b.example.com")))
        #expect(t.select("x.y.c.example.com") == TLSSelection(index: 3, reason: .fallback))
        #expect(t.select("example.com") == TLSSelection(index: 3, reason: .fallback))
        #expect(t.select(nil) == TLSSelection(index: 3, reason: .fallback))
        #expect(t.select("") == TLSSelection(index: 3, reason: .fallback))
    }

    @Test func validNames() {
        for n in ["a.example.com", "*.example.com", "xn--bcher-kva.example", "a-b.c1.io"] { #expect(SNINames.isValid(n), "\(n)") }
        for n in ["example", "*.com", "a..b", "-a.b", "a.b-", "*.*.example.com", "a.*.example.com", "192.0.2.1:443", "A.example.com", "a b.c"] {
            #expect(!SNINames.isValid(n), "\(n)")
        }
    }
}
