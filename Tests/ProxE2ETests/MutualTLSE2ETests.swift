import Foundation
import ProxConfig
import ProxCore
import Testing
@testable import ProxEngine
@testable import ProxTLS

/// Client certificates (mTLS), `require_client_cert`, `require_tls` and the TLS handshake timeout,
/// end to end with certificates the test makes.
@Suite struct MutualTLSE2ETests {
    struct Setup {
        let dir: URL
        let server: (cert: String, key: String)
        let clientCA: (cert: String, key: String)
        let alice: (cert: String, key: String)
        let mallory: (cert: String, key: String)

        init() throws {
            dir = try TestCerts.directory()
            server = try TestCerts.make(dir, "server", cn: "server", dns: ["shop.test"])
            clientCA = try TestCerts.makeCA(dir, "client-ca", cn: "Client CA")
            alice = try TestCerts.makeSigned(dir, "alice", subject: "/O=Example/CN=alice", dns: ["alice.test"], ips: ["10.0.0.7"],
                                             ca: clientCA, client: true)
            let rogue = try TestCerts.makeCA(dir, "rogue-ca", cn: "Rogue CA")
            mallory = try TestCerts.makeSigned(dir, "mallory", subject: "/CN=mallory", ca: rogue, client: true)
        }

        func config(mode: String, handshakeTimeout: String = "10s") -> String {
            """
            version: 1
            server: {access_log: "off"}
            listeners:
              - id: secure
                address: 127.0.0.1:0
                tls:
                  certificates: [{cert: \(server.cert), key: \(server.key)}]
                  client_auth: {ca: \(clientCA.cert), mode: \(mode)}
                  handshake_timeout: \(handshakeTimeout)
              - id: plain
                address: 127.0.0.1:0
            pools: [{id: backend, endpoints: ["{upstream}"]}]
            routes:
              - id: who
                match: {path: {exact: /who}}
                require_client_cert: true
                respond: {body: "subject={tls.client_subject} san={tls.client_san}\\n"}
              - id: up
                match: {path: {prefix: /up/}}
                chain:
                  - headers: {request: {set: {X-Client-Subject: "{tls.client_subject}"}}}
                proxy: backend
              - id: plain-up
                match: {path: {prefix: /plain-up/}}
                proxy: backend
              - id: account
                match: {path: {prefix: /account}}
                require_tls: {action: redirect, https_port: 8443}
                respond: {body: "account over {scheme}\\n"}
              - id: admin
                match: {path: {prefix: /admin}}
                require_tls: reject
                respond: {body: "admin\\n"}
              - id: open
                respond: {body: "open {scheme} subject=[{tls.client_subject}]\\n"}
            """
        }
    }

    /// Whether the listener refuses this client: the handshake fails, or (TLS 1.3, where the
    /// server judges the client's certificate after the client finished its side) the first
    /// request finds the connection closed.
    static func refused(_ port: Int, _ cert: (cert: String, key: String)?) -> Bool {
        do {
            let c = try TLSTestClient(port: port, sni: "shop.test", clientCertificate: cert)
            defer { c.close() }
            _ = try c.get("/open", host: "shop.test")
            return false
        } catch {
            return true
        }
    }

    @Test func requiredModeAcceptsAVerifiedCertificateOnly() throws {
        let s = try Setup()
        let prox = try ProxHarness(s.config(mode: "required"))
        defer { prox.stop() }
        let c = try TLSTestClient(port: prox.port, sni: "shop.test", clientCertificate: s.alice)
        let r = try c.get("/who", host: "shop.test")
        #expect(r.status == 200)
        #expect(r.text == "subject=CN=alice,O=Example san=DNS:alice.test,IP:10.0.0.7\n")
        // The identity is the connection's: every request on it sees it.
        #expect(try c.get("/open", host: "shop.test").text == "open https subject=[CN=alice,O=Example]\n")
        #expect(Self.refused(prox.port, nil), "no certificate")
        #expect(Self.refused(prox.port, s.mallory), "a certificate of another CA")
        // Still serving after the refusals.
        #expect(!Self.refused(prox.port, s.alice))
    }

    @Test func optionalModeLetsRoutesRequireACertificate() throws {
        let s = try Setup()
        let prox = try ProxHarness(s.config(mode: "optional"))
        defer { prox.stop() }
        let anon = try TLSTestClient(port: prox.port, sni: "shop.test")
        #expect(try anon.get("/open", host: "shop.test").text == "open https subject=[]\n")
        let r = try anon.get("/who", host: "shop.test")
        #expect(r.status == 403)
        #expect(r.header("x-prox-error") == "client_certificate_required")
        #expect(r.header("x-request-id")?.isEmpty == false)
        // The connection stays usable after the 403.
        #expect(try anon.get("/open", host: "shop.test").status == 200)
        let alice = try TLSTestClient(port: prox.port, sni: "shop.test", clientCertificate: s.alice)
        #expect(try alice.get("/who", host: "shop.test").status == 200)
        // A certificate that is presented must verify, even in optional mode.
        #expect(Self.refused(prox.port, s.mallory))
        // Over cleartext there is never a client certificate.
        let plain = try TestClient(port: prox.server.boundPorts[1])
        try plain.send("GET /who HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        #expect(try plain.readResponse().status == 403)
    }

    @Test func subjectReachesTheUpstreamOnlyThroughAHeaderRule() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let s = try Setup()
        let prox = try ProxHarness(s.config(mode: "required"), upstream: up.address)
        defer { prox.stop() }
        let c = try TLSTestClient(port: prox.port, sni: "shop.test", clientCertificate: s.alice)
        let r = try c.get("/up/echo", host: "shop.test")
        #expect(r.text.contains("h:x-client-subject=CN=alice,O=Example\n"), "\(r.text)")
        let plain = try c.get("/plain-up/echo", host: "shop.test")
        #expect(plain.status == 200)
        #expect(!plain.text.contains("alice"), "\(plain.text)")
    }

    @Test func requireTLSRedirectsOrRejectsCleartext() throws {
        let s = try Setup()
        let prox = try ProxHarness(s.config(mode: "optional"))
        defer { prox.stop() }
        let plain = try TestClient(port: prox.server.boundPorts[1])
        try plain.send("GET /account/orders?page=2 HTTP/1.1\r\nHost: shop.test:8080\r\n\r\n")
        let r = try plain.readResponse()
        #expect(r.status == 308)
        #expect(r.header("location") == "https://shop.test:8443/account/orders?page=2")
        try plain.send("POST /admin/users HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 0\r\n\r\n")
        let rejected = try plain.readResponse()
        #expect(rejected.status == 403)
        #expect(rejected.header("x-prox-error") == "tls_required")
        #expect(rejected.header("x-request-id")?.isEmpty == false)
        // Over TLS both routes serve.
        let tls = try TLSTestClient(port: prox.port, sni: "shop.test")
        #expect(try tls.get("/account/orders", host: "shop.test").text == "account over https\n")
        #expect(try tls.get("/admin", host: "shop.test").text == "admin\n")
    }

    @Test func handshakeTimeoutClosesSilentAndPartialClients() throws {
        let s = try Setup()
        let prox = try ProxHarness(s.config(mode: "optional", handshakeTimeout: "300ms"))
        defer { prox.stop() }
        func closedWithin(_ seconds: Double, sending bytes: [UInt8]) throws -> Bool {
            let c = try TestClient(port: prox.port, timeoutSeconds: 5)
            if !bytes.isEmpty { try c.send(bytes) }
            let start = Date()
            let closed = c.waitForClose()
            return closed && Date().timeIntervalSince(start) < seconds
        }
        #expect(try closedWithin(3, sending: []), "a client that sends nothing")
        // The start of a ClientHello record: a handshake record header promising 512 bytes, 4 of them.
        #expect(try closedWithin(3, sending: [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]), "a partial ClientHello")
        // A client that completes its handshake in time is served, and kept past the timeout.
        let c = try TLSTestClient(port: prox.port, sni: "shop.test")
        usleep(600_000)
        #expect(try c.get("/open", host: "shop.test").status == 200)
    }

    @Test func validateWarnsWhereRequirementsCannotHold() throws {
        let yaml = """
        version: 1
        listeners: [{id: plain, address: 127.0.0.1:0}]
        routes:
          - id: a
            require_client_cert: true
            respond: {body: a}
        """
        let r = ConfigCompiler.compile(text: yaml, fileName: "w.yaml", version: 1)
        let w = try TLSConfigTests.only(r, .warning)
        #expect(w.path == "routes[0].require_client_cert")
        #expect(w.message.contains("no listener of route 'a' asks for client certificates"))
    }

    @Test func clientAuthBundleIsCheckedAndRequireTLSOnTLSOnlyIsMoot() throws {
        let s = try Setup()
        let yaml = """
        version: 1
        listeners:
          - id: secure
            address: 127.0.0.1:0
            tls:
              certificates: [{cert: \(s.server.cert), key: \(s.server.key)}]
              client_auth: {ca: \(s.dir.path)/missing.pem}
        routes:
          - id: a
            require_tls: redirect
            respond: {body: a}
        """
        let r = ConfigCompiler.compile(text: yaml, fileName: "m.yaml", version: 1)
        let e = try TLSConfigTests.only(r)
        #expect(e.path == "listeners[0].tls.client_auth.ca")
        #expect(e.message.contains("cannot read the CA bundle"))
        let w = try TLSConfigTests.only(r, .warning)
        #expect(w.path == "routes[0].require_tls")
        #expect(w.message.contains("every listener of route 'a' serves TLS"))
    }
}

/// Client certificate names as text: RFC 4514 escaping, and nothing that could break a header.
@Suite struct ClientCertificateNamesTests {
    @Test func rfc4514EscapesAndControlCharacters() {
        #expect(ClientCertificateNames.escape("Example, Inc.") == "Example\\, Inc.")
        #expect(ClientCertificateNames.escape("#1 ") == "\\#1\\ ")
        #expect(ClientCertificateNames.escape("a=b+c;d<e>\"f\\") == "a\\=b\\+c\\;d\\<e\\>\\\"f\\\\")
        #expect(ClientCertificateNames.escape("evil\r\nX-Admin: 1") == "evil\\0D\\0AX-Admin: 1")
        #expect(ClientCertificateNames.escape("Zürich") == "Zürich")
        #expect(ClientCertificateNames.printable("a.example,\nb") == "a.example\\2C\\0Ab")
    }

    @Test func ipAddressesAsText() {
        #expect(ClientCertificateNames.ipText([10, 0, 0, 7]) == "10.0.0.7")
        #expect(ClientCertificateNames.ipText([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]) == "2001:db8::1")
        #expect(ClientCertificateNames.ipText([1, 2, 3]) == nil)
    }
}
