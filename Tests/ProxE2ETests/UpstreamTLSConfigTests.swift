import Foundation
import ProxConfig
import ProxCore
import Testing
@testable import ProxEngine

/// `prox validate` on pools' `tls`: files, keys, the insecure switch, each with position and path.
@Suite struct UpstreamTLSConfigTests {
    static func compile(_ tls: String) -> CompileResult {
        let yaml = """
        version: 1
        listeners: [{id: main, address: 127.0.0.1:0}]
        pools:
          - id: api
            endpoints: [api.internal.test:443, 10.0.0.5:8443]
            tls:
        \(tls)
        routes:
          - id: all
            proxy: api
        """
        return ConfigCompiler.compile(text: yaml, fileName: "up-tls.yaml", version: 1)
    }

    @Test func missingCABundleIsPositioned() throws {
        let dir = try TestCerts.directory()
        let r = Self.compile("      ca: \(dir.path)/none.pem")
        #expect(r.snapshot == nil)
        let d = try TLSConfigTests.only(r)
        #expect(d.path == "pools[0].tls.ca")
        #expect(d.mark.line == 7 && d.mark.column == 11)
        #expect(d.message.contains("cannot read the CA bundle") && d.message.contains("no such file"))
    }

    @Test func bundleWithoutCertificate() throws {
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "a")
        let d = try TLSConfigTests.only(Self.compile("      ca: \(a.key)"))
        #expect(d.path == "pools[0].tls.ca")
        #expect(d.message.contains("holds no PEM certificate"))
    }

    @Test func clientKeyMustMatchAndComeWithItsCertificate() throws {
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "a")
        let b = try TestCerts.make(dir, "b", cn: "b")
        let d = try TLSConfigTests.only(Self.compile("      cert: \(a.cert)\n      key: \(b.key)"))
        #expect(d.path == "pools[0].tls.key")
        #expect(d.message.contains("does not match the certificate"))
        let alone = try TLSConfigTests.only(Self.compile("      cert: \(a.cert)"))
        #expect(alone.message.contains("key"), "\(alone.message)")
    }

    @Test func insecureSkipVerifyIsAPositionedWarning() throws {
        let r = Self.compile("      insecure_skip_verify: true")
        #expect(r.snapshot != nil)
        let w = try TLSConfigTests.only(r, .warning)
        #expect(w.path == "pools[0].tls.insecure_skip_verify")
        #expect(w.mark.line == 7 && w.mark.column == 29)
        #expect(DiagnosticFormatter.text([w]).hasPrefix("up-tls.yaml:7:29: warning: pools[0].tls.insecure_skip_verify: insecure_skip_verify: the upstream's certificate is not verified"))
    }

    @Test func sniMustBeAPlainName() throws {
        let d = try TLSConfigTests.only(Self.compile("      sni: \"*.internal.test\""))
        #expect(d.path == "pools[0].tls.sni")
        #expect(d.message.contains("not a host name to send as SNI"))
    }

    @Test func shorthandAndServerNames() throws {
        let r = Self.compile("      true")
        let pool = try #require(r.snapshot?.pools.first)
        let tls = try #require(pool.tls)
        #expect(tls.summary == UpstreamTLSSummary(ca: nil, verify: true, sni: nil, clientCertificate: nil, minVersion: "1.2"))
        // A name endpoint sends its name; an IP endpoint sends none.
        #expect(pool.endpoints.map(\.tlsServerName) == ["api.internal.test", nil])
        #expect(pool.endpoints[0].connectionKey != pool.endpoints[0].address)
        let off = Self.compile("      false")
        #expect(try #require(off.snapshot).pools[0].tls == nil)
        #expect(off.snapshot?.pools[0].endpoints[0].connectionKey == "api.internal.test:443")
    }

    @Test func dryRunShowsTheUpstreamTLS() throws {
        let dir = try TestCerts.directory()
        let ca = try TestCerts.makeCA(dir, "ca", cn: "CA")
        let r = Self.compile("      ca: \(ca.cert)\n      sni: api.internal.test\n      min_version: \"1.3\"")
        let snap = try #require(r.snapshot)
        let out = try DryRun.run(DryRunRequest(method: "GET", url: "http://x/"), snapshot: snap)
        let text = DryRun.text(out)
        #expect(text.contains("  tls 1.3+: SNI 'api.internal.test', certificate verified against \(ca.cert) for the name 'api.internal.test'\n"), "\(text)")
    }
}
