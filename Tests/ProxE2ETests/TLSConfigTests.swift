import Foundation
import ProxConfig
import ProxCore
import Testing

/// `prox validate` on TLS listeners: files, keys, names, dates, each with its position and path.
@Suite struct TLSConfigTests {
    static func compile(_ tls: String) -> CompileResult {
        let yaml = """
        version: 1
        listeners:
          - id: secure
            address: 127.0.0.1:0
            tls:
        \(tls)
        routes:
          - id: all
            respond: {body: ok}
        """
        return ConfigCompiler.compile(text: yaml, fileName: "tls-test.yaml", version: 1)
    }

    /// The one error (or warning) reported, as `prox validate` prints it.
    static func only(_ r: CompileResult, _ severity: Diagnostic.Severity = .error) throws -> Diagnostic {
        let ds = r.diagnostics.filter { $0.severity == severity }
        try #require(ds.count == 1, "\(DiagnosticFormatter.text(r.diagnostics))")
        return ds[0]
    }

    @Test func missingFile() throws {
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "a", dns: ["a.test"])
        let r = Self.compile("""
              certificates:
                - cert: \(dir.path)/nothing.crt
                  key: \(a.key)
        """)
        #expect(r.snapshot == nil)
        let d = try Self.only(r)
        #expect(d.path == "listeners[0].tls.certificates[0].cert")
        #expect(d.message.contains("no such file"))
        #expect(DiagnosticFormatter.text([d]).hasPrefix("tls-test.yaml:7:17: error: listeners[0].tls.certificates[0].cert: cannot read the certificate file"))
    }

    @Test func keyOfAnotherCertificate() throws {
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "a", dns: ["a.test"])
        let b = try TestCerts.make(dir, "b", cn: "b", dns: ["b.test"])
        let r = Self.compile("""
              certificates:
                - cert: \(a.cert)
                  key: \(b.key)
        """)
        let d = try Self.only(r)
        #expect(d.path == "listeners[0].tls.certificates[0].key")
        #expect(d.mark.line == 8 && d.mark.column == 16)
        #expect(d.message.contains("does not match the certificate"))
    }

    @Test func swappedCertAndKey() throws {
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "a", dns: ["a.test"])
        let r = Self.compile("""
              certificates:
                - cert: \(a.key)
                  key: \(a.cert)
        """)
        let d = try Self.only(r)
        #expect(d.path == "listeners[0].tls.certificates[0].cert")
        #expect(d.hint?.contains("swapped") == true)
    }

    @Test func duplicateSNIName() throws {
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "a", dns: ["a.test", "shared.test"])
        let b = try TestCerts.make(dir, "b", cn: "b", dns: ["shared.test"])
        let c = try TestCerts.make(dir, "c", cn: "c", dns: ["c.test"])
        let fromCerts = Self.compile("""
              certificates:
                - {cert: \(a.cert), key: \(a.key)}
                - {cert: \(b.cert), key: \(b.key)}
        """)
        let d = try Self.only(fromCerts)
        #expect(d.path == "listeners[0].tls.certificates[1].cert")
        #expect(d.mark.line == 8)
        #expect(d.message.contains("'shared.test' is served by two certificates of listener 'secure'"))
        // Names given in the config: the error points at the name.
        let fromNames = Self.compile("""
              certificates:
                - {cert: \(a.cert), key: \(a.key), names: [a.test]}
                - cert: \(c.cert)
                  key: \(c.key)
                  names: [c.test, A.TEST]
        """)
        let e = try Self.only(fromNames)
        #expect(e.path == "listeners[0].tls.certificates[1].names[1]")
        #expect(e.mark.line == 10 && e.mark.column == 27)
        // `names` overriding the certificate's resolves the clash.
        let fixed = Self.compile("""
              certificates:
                - {cert: \(a.cert), key: \(a.key), names: [a.test]}
                - {cert: \(b.cert), key: \(b.key)}
        """)
        #expect(fixed.diagnostics.isEmpty, "\(DiagnosticFormatter.text(fixed.diagnostics))")
        #expect(fixed.snapshot?.listeners[0].tls?.certificates.map(\.names) == [["a.test"], ["shared.test"]])
        #expect(fixed.snapshot?.listeners[0].scheme == "https")
    }

    @Test func expiredIsAnErrorExpiringSoonAWarning() throws {
        let dir = try TestCerts.directory()
        let dead = try TestCerts.make(dir, "dead", cn: "dead.test", days: -1)
        let r = Self.compile("""
              certificates:
                - cert: \(dead.cert)
                  key: \(dead.key)
        """)
        let d = try Self.only(r)
        #expect(d.path == "listeners[0].tls.certificates[0].cert")
        #expect(d.message.contains("expired on"))
        let soon = try TestCerts.make(dir, "soon", cn: "soon.test", days: 10)
        let w = Self.compile("""
              certificates:
                - cert: \(soon.cert)
                  key: \(soon.key)
        """)
        #expect(w.snapshot != nil)
        let warning = try Self.only(w, .warning)
        #expect(warning.message.contains("expires on") && warning.message.contains("in 9 days") || warning.message.contains("in 10 days"))
        // Names from the common name when the certificate has no subjectAltName.
        #expect(w.snapshot?.listeners[0].tls?.certificates[0].names == ["soon.test"])
    }

    @Test func shapeErrors() throws {
        #expect(try Self.only(Self.compile("      min_version: \"1.2\"")).message.contains("at least one certificate"))
        let r = Self.compile("      min_version: 1.3\n      certificates_dir: /nonexistent-prox")
        #expect(r.errors.contains { $0.path == "listeners[0].tls.min_version" && $0.hint == "quote it: \"1.3\"" })
        #expect(r.errors.contains { $0.path == "listeners[0].tls.certificates_dir" && $0.message.contains("no such directory") })
        let bad = Self.compile("""
              certificates:
                - {cert: a.crt, key: a.key, names: ["10.0.0.1:443"], default: true}
                - {cert: b.crt, key: b.key, default: true}
        """)
        #expect(bad.errors.contains { $0.path == "listeners[0].tls.certificates[0].names[0]" })
        #expect(bad.errors.contains { $0.path == "listeners[0].tls.certificates[1].default" })
    }

    @Test func certificatesDirPairsAndStrays() throws {
        let dir = try TestCerts.directory()
        try TestCerts.make(dir, "one", cn: "one", dns: ["one.test"])
        try TestCerts.make(dir, "two", cn: "two", dns: ["two.test"])
        try FileManager.default.removeItem(atPath: dir.appendingPathComponent("two.key").path)
        let r = Self.compile("      certificates_dir: \(dir.path)")
        let d = try Self.only(r)
        #expect(d.path == "listeners[0].tls.certificates_dir")
        #expect(d.message.contains("two.crt has no key"))
    }

    @Test func relativePathsAreReadFromTheConfigFilesDirectory() throws {
        let dir = try TestCerts.directory()
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("conf/certs"), withIntermediateDirectories: true)
        try TestCerts.make(dir.appendingPathComponent("conf/certs"), "site", cn: "site", dns: ["site.test"])
        let yaml = """
        version: 1
        listeners:
          - id: secure
            address: 127.0.0.1:0
            tls: {certificates: [{cert: certs/site.crt, key: certs/site.key}]}
        routes: [{id: all, respond: {body: ok}}]
        """
        let r = ConfigCompiler.compile(text: yaml, fileName: "conf/prox.yaml", version: 1, workingDirectory: dir.path)
        #expect(r.diagnostics.isEmpty, "\(DiagnosticFormatter.text(r.diagnostics))")
        #expect(r.snapshot?.listeners[0].tls?.certificates[0].certFile == "conf/certs/site.crt")
        let path = dir.appendingPathComponent("conf/prox.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(ConfigCompiler.compile(file: path, version: 1).diagnostics.isEmpty)
    }
}

/// `prox dry-run --sni` and `prox validate` on TLS configs, as a user runs them.
@Suite struct TLSCLITests {
    @Test func dryRunSNIShowsTheCertificate() throws {
        let text = try CLITests.prox(["dry-run", "--config", "configs/tls.yaml", "GET https://v1.api.example/users",
                                      "--listener", "https", "--sni", "v1.api.example"])
        #expect(text.status == 0, "\(text.err)")
        #expect(text.out.contains("SNI 'v1.api.example' -> configs/tls/api-wildcard.crt (*.api.example), by wildcard *.api.example"))
        #expect(text.out.contains("X-Forwarded-Proto: https"))
        let json = try CLITests.prox(["dry-run", "--config", "configs/tls.yaml", "GET https://x.example/", "--listener", "https",
                                      "--format", "json"])
        #expect(json.out.contains("\"certificate\" : \"configs/tls/default.crt\""), "\(json.out)")
        #expect(json.out.contains("\"selected_by\" : \"default\""))
        let cleartext = try CLITests.prox(["dry-run", "--config", "configs/tls.yaml", "GET http://x.example/", "--listener", "http", "--sni", "x.example"])
        #expect(cleartext.status == 1)
        #expect(cleartext.err.contains("--sni applies to a TLS listener"))
    }

    @Test func validateReportsEveryCertificateProblem() throws {
        let dir = try TestCerts.directory()
        let a = try TestCerts.make(dir, "a", cn: "a", dns: ["a.test"])
        let b = try TestCerts.make(dir, "b", cn: "b", dns: ["a.test"])
        let f = dir.appendingPathComponent("prox.yaml").path
        try """
        version: 1
        listeners:
          - id: secure
            address: 127.0.0.1:0
            tls:
              certificates:
                - {cert: a.crt, key: b.key}
                - {cert: b.crt, key: b.key}
                - {cert: a.crt, key: a.key}
                - {cert: gone.crt, key: a.key}
        routes: [{id: all, respond: {body: ok}}]
        """.write(toFile: f, atomically: true, encoding: .utf8)
        _ = (a, b)
        let r = try CLITests.prox(["validate", f])
        #expect(r.status == 1)
        let out = r.out + r.err
        #expect(out.contains("prox.yaml:7:30: error: listeners[0].tls.certificates[0].key: the key"), "\(out)")
        #expect(out.contains("prox.yaml:9:18: error: listeners[0].tls.certificates[2].cert: SNI name 'a.test' is served by two certificates"), "\(out)")
        #expect(out.contains("prox.yaml:10:18: error: listeners[0].tls.certificates[3].cert: cannot read the certificate file"), "\(out)")
    }

    /// A renewed certificate (new files at the same paths) is served to new connections without a
    /// SIGHUP: `serve` watches the certificate and key files of its TLS listeners.
    @Test func serveReloadsWhenACertificateFileChanges() throws {
        let dir = try TestCerts.directory()
        let live = try TestCerts.make(dir, "live", cn: "cert-old", dns: ["a.test"])
        let port = CLITests.freePort()
        let f = dir.appendingPathComponent("prox.yaml").path
        try """
        version: 1
        server: {access_log: "off"}
        listeners:
          - id: secure
            address: 127.0.0.1:\(port)
            tls: {certificates: [{cert: live.crt, key: live.key}]}
        routes: [{id: all, respond: {body: ok}}]
        """.write(toFile: f, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.binary)
        p.arguments = ["serve", "--config", f, "--threads", "1"]
        p.standardError = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate(); p.waitUntilExit() } }
        func servedName() -> String? { (try? TLSTestClient(port: port, sni: "a.test"))?.peerCommonName }
        #expect(try CLITests.eventually(tries: 200, every: 0.05) { servedName() == "cert-old" })
        // Renewed elsewhere, then moved into place (as certbot and friends do).
        let next = try TestCerts.directory()
        let renewed = try TestCerts.make(next, "live", cn: "cert-new", dns: ["a.test"])
        _ = live
        try FileManager.default.removeItem(atPath: dir.appendingPathComponent("live.key").path)
        try FileManager.default.moveItem(atPath: renewed.key, toPath: dir.appendingPathComponent("live.key").path)
        try FileManager.default.removeItem(atPath: dir.appendingPathComponent("live.crt").path)
        try FileManager.default.moveItem(atPath: renewed.cert, toPath: dir.appendingPathComponent("live.crt").path)
        #expect(try CLITests.eventually(tries: 100, every: 0.1) { servedName() == "cert-new" })
    }
}
