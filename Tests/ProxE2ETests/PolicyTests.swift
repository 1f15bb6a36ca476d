import Foundation
import Testing

/// Policies as users run them: `validate --policy` and `serve --policy`.
@Suite(.serialized) struct PolicyTests {
    static let baseline = "configs/policies/baseline.yaml"

    /// Every requirement kind broken once: the diagnostics are the golden file's, positions and all.
    @Test func validateReportsEveryViolationAtItsPlace() throws {
        let r = try CLITests.prox(["validate", "--policy", Self.baseline, "Tests/Golden/policy/violations.yaml"])
        #expect(r.status == 1)
        let url = CLITests.root.appendingPathComponent("Tests/Golden/policy/violations.expected")
        if ProcessInfo.processInfo.environment["PROX_UPDATE_GOLDEN"] == "1" {
            try r.out.write(to: url, atomically: true, encoding: .utf8)
        }
        #expect(r.out == (try String(contentsOf: url, encoding: .utf8)))
        #expect(r.err.contains("3 error(s)"))
        // docs/POLICY.md shows one of these lines: the real one.
        let doc = try String(contentsOf: CLITests.root.appendingPathComponent("docs/POLICY.md"), encoding: .utf8)
        let line = try #require(r.out.split(separator: "\n").first { $0.contains("public-body-limit': route") })
        #expect(doc.contains(String(line)), "docs/POLICY.md's example violation differs from the real output")
    }

    @Test func theExampleConfigKeepsTheExamplePolicy() throws {
        let r = try CLITests.prox(["validate", "--policy", Self.baseline, "configs/admin-split.yaml"])
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(!r.out.contains("warning"))
    }

    @Test func warnRulesDoNotFailValidation() throws {
        let policy = try CLITests.temp("warn.yaml", """
        version: 1
        rules:
          - id: short-timeouts
            severity: warn
            require: {pool: {key: timeouts.response_header, at_most: 5s}}
        """)
        let r = try CLITests.prox(["validate", "--policy", policy, "configs/admin-split.yaml"])
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(r.out.contains("warning: routes[0].proxy: policy 'short-timeouts': route 'admin' proxies to pool admin, whose timeouts.response_header is 30s: must be at most 5s"), "\(r.out)")
    }

    @Test func policyFileErrorsArePositioned() throws {
        let policy = try CLITests.temp("typo.yaml", """
        version: 1
        rules:
          - id: a
            require: {filter: requestid}
          - id: a
            selct: {tags: [public]}
            require: {not_proxy_to: [admin]}
          - id: b
            require: {}
        """)
        let r = try CLITests.prox(["validate", "--policy", policy, "configs/admin-split.yaml"])
        #expect(r.status == 1)
        #expect(r.out.contains("typo.yaml:4:23: error: rules[0].require.filter: unknown filter 'requestid'"), "\(r.out)")
        #expect(r.out.contains("did you mean 'request_id'?"))
        #expect(r.out.contains("typo.yaml:5:9: error: rules[1].id: rule id 'a' is used twice"), "\(r.out)")
        #expect(r.out.contains("typo.yaml:6:5: error: rules[1].selct: unknown key 'selct'"), "\(r.out)")
        #expect(r.out.contains("rules[2].require: a requirement needs at least one of"), "\(r.out)")
        let missing = try CLITests.prox(["validate", "--policy", "/nonexistent/policy.yaml", "configs/admin-split.yaml"])
        #expect(missing.status == 2)
    }

    /// `serve --policy`: a violating config is refused at start (exit 1), and on reload the running
    /// config keeps serving; a reload that keeps the policy is applied.
    @Test func serveRefusesConfigsThatBreakEnforceRules() throws {
        let port = CLITests.freePort()
        let policy = try CLITests.temp("p.yaml", """
        version: 1
        rules:
          - id: no-teapots
            select: {tags: [public]}
            require: {filter: request_id}
        """)
        func config(_ body: String, chain: Bool) -> String {
            """
            version: 1
            server: {access_log: "off"}
            listeners: [{id: main, address: "127.0.0.1:\(port)"}]
            routes:
              - id: hello
                tags: [public]
            \(chain ? "    chain: [request_id]\n" : "")    respond: {status: 200, body: "\(body)"}
            """
        }
        let bad = try CLITests.temp("bad.yaml", config("bad", chain: false))
        let refused = try CLITests.prox(["serve", "--policy", policy, "--config", bad, "--threads", "1", "--no-watch"])
        #expect(refused.status == 1)
        #expect(refused.err.contains("policy 'no-teapots': route 'hello' has no chain; it must run request_id"), "\(refused.err)")

        let f = try CLITests.temp("serve.yaml", config("one", chain: true))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.binary)
        p.arguments = ["serve", "--policy", policy, "--config", f, "--threads", "1", "--no-watch"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        #expect(try CLITests.get(port) == "one")
        try config("two", chain: false).write(toFile: f, atomically: true, encoding: .utf8)
        kill(p.processIdentifier, SIGHUP)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try CLITests.get(port) == "one", "a config that breaks an enforce rule must not replace the running one")
        try config("three", chain: true).write(toFile: f, atomically: true, encoding: .utf8)
        kill(p.processIdentifier, SIGHUP)
        #expect(try CLITests.eventually { try CLITests.get(port) == "three" })
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("reload rejected"))
        #expect(log.contains("no-teapots"))
    }
}
