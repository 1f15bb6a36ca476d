import Foundation
import Testing

/// The `prox` binary as a user runs it: exit codes, output, and `serve` with real signals.
@Suite(.serialized) struct CLITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The binary `swift test` built next to this test bundle.
    static var binary: String {
        let bundle = Bundle.main.bundleURL  // .../debug/proxPackageTests.xctest or .../debug
        for dir in [bundle.deletingLastPathComponent(), bundle, root.appendingPathComponent(".build/debug")] {
            let p = dir.appendingPathComponent("prox").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return root.appendingPathComponent(".build/debug/prox").path
    }

    struct Run {
        var status: Int32
        var out: String
        var err: String
    }

    @discardableResult
    static func prox(_ args: [String], cwd: URL = root) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        p.currentDirectoryURL = cwd
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
    }

    static func temp(_ name: String, _ text: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("prox-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let f = dir.appendingPathComponent(name).path
        try text.write(toFile: f, atomically: true, encoding: .utf8)
        return f
    }

    @Test func validateAcceptsEveryExampleConfig() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("configs").path)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".json") }.sorted().map { "configs/" + $0 }
        #expect(files.count >= 3)
        let r = try Self.prox(["validate"] + files)
        #expect(r.status == 0, "\(r.out)\(r.err)")
    }

    @Test func validateReportsEveryErrorWithPositionAndExitCodes() throws {
        let f = try Self.temp("broken.yaml", """
        version: 1
        listeners: [{id: main, address: "127.0.0.1:8080"}]
        pools:
          - id: users
            endpoints: [127.0.0.1:9000]
        routes:
          - id: a
            match: {path: {regex: "^/v1/(users"}}
            proxy: users
          - id: b
            proxy: user
          - id: c
            match: {path: {prefix: /x}}
            respond: {status: 200}
        """)
        let r = try Self.prox(["validate", f])
        #expect(r.status == 1)
        #expect(r.out.contains("broken.yaml:8:"), "\(r.out)")
        #expect(r.out.contains("routes[0].match.path.regex"))
        #expect(r.out.contains("routes[1].proxy"))
        #expect(r.out.contains("did you mean 'users'"))
        #expect(r.out.contains("routes[2]"), "the route after the catch-all is shadowed")
        let json = try Self.prox(["validate", "--format", "json", f])
        #expect(json.status == 1)
        let obj = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any]
        #expect(obj?["valid"] as? Bool == false)
        #expect(try Self.prox(["validate", "/nonexistent/prox.yaml"]).status == 2)
    }

    @Test func schemaCommandMatchesCommittedSchema() throws {
        let r = try Self.prox(["schema"])
        #expect(r.status == 0)
        let committed = try String(contentsOf: Self.root.appendingPathComponent("schemas/prox.schema.json"), encoding: .utf8)
        #expect(r.out == committed)
    }

    @Test func schemaCommandPrintsAndWritesFilterSchemas() throws {
        let r = try Self.prox(["schema", "--filter", "tenant"])
        #expect(r.status == 0, "\(r.err)")
        let committed = try String(contentsOf: Self.root.appendingPathComponent("schemas/filters/tenant.json"), encoding: .utf8)
        #expect(r.out == committed)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("prox-schemas-\(UUID().uuidString)").path
        let w = try Self.prox(["schema", "--filters-dir", dir])
        #expect(w.status == 0, "\(w.err)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(files == ["body_limit.json", "ext_filter.json", "headers.json", "ip_access.json", "maintenance.json", "request_id.json", "tenant.json"])
        let bad = try Self.prox(["schema", "--filter", "tenat"])
        #expect(bad.status != 0)
        #expect(bad.err.contains("did you mean 'tenant'?"), "\(bad.err)")
    }

    @Test func filtersListsEveryFilterAndPrintsOnesReference() throws {
        let r = try Self.prox(["filters"])
        #expect(r.status == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n")
        for (name, origin) in [("request_id", "built-in"), ("body_limit", "built-in"), ("maintenance", "custom"), ("tenant", "custom")] {
            let line = lines.first { $0.hasPrefix(name + " ") }
            #expect(line?.contains(" \(origin) ") == true, "\(name): \(line ?? "missing")")
        }
        let t = try Self.prox(["filters", "tenant"])
        #expect(t.status == 0)
        #expect(t.out.hasPrefix("## `tenant`\n"))
        #expect(t.out.contains("`host_regex`"))
        #expect(t.out.contains("421"))
        let docs = try String(contentsOf: Self.root.appendingPathComponent("docs/CONFIG.md"), encoding: .utf8)
        // The same section as docs/CONFIG.md, one heading level up.
        func unleveled(_ s: String) -> String {
            s.split(separator: "\n", omittingEmptySubsequences: false).map { String($0.drop { $0 == "#" }) }.joined(separator: "\n")
        }
        #expect(unleveled(docs).contains(unleveled(t.out)), "the same section as docs/CONFIG.md")
        let u = try Self.prox(["filters", "maintenace"])
        #expect(u.status == 1)
        #expect(u.err == "prox filters: unknown filter 'maintenace'; did you mean 'maintenance'?\n")
        let v = try Self.prox(["filters", "zzz"])
        #expect(v.err.contains("known filters: request_id, headers, ip_access, body_limit, ext_filter, maintenance, tenant"))
    }

    @Test func dryRunPrintsRouteStagesAndUpstreamRequest() throws {
        let r = try Self.prox(["dry-run", "--config", "configs/multi-host.yaml", "GET http://api.example.com/v1/users/7?x=1",
                               "-H", "X-Api-Version: v2", "--cookie", "session=abc", "--client-ip", "203.0.113.9"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("api-user  MATCH"))
        #expect(r.out.contains("| GET /v1/users/7?x=1 HTTP/1.1"))
        #expect(r.out.contains("| X-User-Id: 7"))
        #expect(r.out.contains("| X-Forwarded-For: 203.0.113.9"))
        let j = try Self.prox(["dry-run", "--config", "configs/multi-host.yaml", "--format", "json", "GET http://nowhere.test/"])
        let obj = try JSONSerialization.jsonObject(with: Data(j.out.utf8)) as? [String: Any]
        #expect(obj?["route"] as? String == "unknown-host")
        #expect((obj?["local"] as? [String: Any])?["status"] as? Int == 421)
    }

    @Test func dryRunFlagsForWhatServeSees() throws {
        // Methods are case-sensitive, as in serve: `get` is not `GET` (old-docs takes GET, HEAD).
        let lower = try Self.prox(["dry-run", "--format", "json", "get http://localhost:8080/old/guide"])
        var obj = try JSONSerialization.jsonObject(with: Data(lower.out.utf8)) as? [String: Any]
        #expect(obj?["route"] as? String == "not-found")
        // No invented Host: serve's 400.
        let noHost = try Self.prox(["dry-run", "--format", "json", "GET /old/guide"])
        obj = try JSONSerialization.jsonObject(with: Data(noHost.out.utf8)) as? [String: Any]
        #expect((obj?["local"] as? [String: Any])?["status"] as? Int == 400)
        // HTTP/1.0 needs none.
        let v10 = try Self.prox(["dry-run", "--http1.0", "GET /old/guide"])
        #expect(v10.out.contains("request: GET /old/guide HTTP/1.0"))
        #expect(v10.out.contains("301 Moved Permanently"))
        // Absolute-form: the authority wins over Host.
        let abs = try Self.prox(["dry-run", "--config", "configs/multi-host.yaml", "--absolute-form", "-H", "Host: unknown.test",
                                 "GET http://api.example.com/v1/users/42"])
        #expect(abs.out.contains("| Host: api.example.com"), "\(abs.out)\(abs.err)")
        // Raw bytes, LF line endings converted (and said so).
        let raw = try Self.temp("req.txt", "GET /old/guide HTTP/1.1\nHost: localhost\n\n")
        let r = try Self.prox(["dry-run", "--raw", raw])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("301 Moved Permanently"))
        #expect(r.err.contains("each LF was sent as CRLF"))
        // --random makes the split reproducible; without it the report says the choice is illustrative.
        let canary = try Self.prox(["dry-run", "--config", "configs/canary.yaml", "--random", "0.95", "GET http://shop.example/"])
        #expect(canary.out.contains("decided:   pool canary"))
        #expect(canary.out.contains("in canary's band 90-100"))
        let random = try Self.prox(["dry-run", "--config", "configs/canary.yaml", "GET http://shop.example/"])
        #expect(random.out.contains("illustrative"))
        let badRandom = try Self.prox(["dry-run", "--random", "1.5", "GET http://localhost/"])
        #expect(badRandom.status != 0)
        let split = try Self.prox(["check", "--config", "configs/canary.yaml", "Tests/Golden/canary.checks.yaml"])
        #expect(split.status == 0, "\(split.out)\(split.err)")
        #expect(split.out.contains("4 passed, 0 failed"))
    }

    @Test func checkPassesFailsAndReportsCoverage() throws {
        let ok = try Self.prox(["check", "--config", "configs/basic.yaml", "Tests/Golden/basic.checks.yaml"])
        #expect(ok.status == 0, "\(ok.out)\(ok.err)")
        #expect(ok.out.contains("4 passed, 0 failed"))
        #expect(ok.out.contains("route coverage: 3/3"))
        let failing = try Self.temp("t.yaml", """
        tests:
          - request: GET http://shop.example/healthz
            expect: {route: app, status: 404}
        """)
        let bad = try Self.prox(["check", "--config", "configs/basic.yaml", failing])
        #expect(bad.status == 1)
        #expect(bad.out.contains("route: expected app, got health"))
        #expect(bad.out.contains("routes no test reached: uploads, app"))
        let coverage = try Self.temp("c.yaml", """
        tests:
          - request: GET http://shop.example/healthz
            expect: {route: health}
        """)
        #expect(try Self.prox(["check", "--config", "configs/basic.yaml", "--min-coverage", "50", coverage]).status == 1)
        #expect(try Self.prox(["check", "--config", "configs/basic.yaml", "--min-coverage", "30", coverage]).status == 0)
    }

    @Test func serveReloadsOnSighupRejectsInvalidConfigAndDrainsOnSigterm() throws {
        let port = Self.freePort()
        let config = { (body: String) in Self.helloConfig(port: port, body: body) }
        let f = try Self.temp("serve.yaml", config("one"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = ["serve", "--config", f, "--threads", "1", "--no-watch"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        #expect(try Self.get(port) == "one")
        try config("two").write(toFile: f, atomically: true, encoding: .utf8)
        kill(p.processIdentifier, SIGHUP)
        #expect(try Self.eventually { try Self.get(port) == "two" })
        try "version: 1\nlisteners: []\nroutes: nope\n".write(toFile: f, atomically: true, encoding: .utf8)
        kill(p.processIdentifier, SIGHUP)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try Self.get(port) == "two", "an invalid config must not replace the running one")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("reload rejected"))
        #expect(log.contains("serve.yaml:"), "the rejection lists the diagnostics")
    }

    @Test func serveReloadsWhenTheConfigFileChanges() throws {
        let port = Self.freePort()
        let config = { (body: String) in Self.helloConfig(port: port, body: body) }
        let f = try Self.temp("watched.yaml", config("before"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = ["serve", "--config", f, "--threads", "1"]
        p.standardError = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate(); p.waitUntilExit() } }
        #expect(try Self.get(port) == "before")
        try config("after the edit").write(toFile: f, atomically: true, encoding: .utf8)
        #expect(try Self.eventually(tries: 100, every: 0.05) { try Self.get(port) == "after the edit" })
    }

    /// One listener on `port`; every request answered with `body`.
    static func helloConfig(port: Int, body: String) -> String {
        """
        version: 1
        server: {access_log: "off"}
        listeners: [{id: main, address: "127.0.0.1:\(port)"}]
        routes:
          - id: hello
            respond: {status: 200, body: "\(body)"}
        """
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }

    static func get(_ port: Int) throws -> String {
        let end = Date().addingTimeInterval(10)
        while true {
            do {
                let c = try TestClient(port: port)
                try c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                return try c.readResponse().text
            } catch {
                if Date() > end { throw error }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    static func eventually(tries: Int = 100, every: Double = 0.05, _ body: () throws -> Bool) throws -> Bool {
        for _ in 0..<tries {
            if try body() { return true }
            Thread.sleep(forTimeInterval: every)
        }
        return false
    }
}
