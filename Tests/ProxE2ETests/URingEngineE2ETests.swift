#if os(Linux)
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ProxCore
@testable import ProxEngine
import Testing

/// The io_uring engine as `prox serve` picks it. The whole end-to-end suite runs on it by default
/// where io_uring is available (and again on SwiftNIO with `PROX_TEST_ENGINE=nio`, as CI does);
/// these are the engine's own cases.
@Suite(.serialized) struct URingEngineE2ETests {
    static let passed = URingProbe(available: true, reason: "io_uring is available (test)")

    /// What the io_uring engine does not carry yet keeps a config on SwiftNIO (`auto`), or stops
    /// it with the reason (`uring`).
    @Test func configsTheEngineDoesNotCarryStayOnNIO() throws {
        let secure = try ProxHarness.compile("""
        version: 1
        listeners: [{ id: main, address: "127.0.0.1:0" }]
        pools: [{ id: secure, endpoints: ["127.0.0.1:9443"], tls: { insecure_skip_verify: true } }]
        routes: [{ id: all, proxy: secure }]
        """, upstream: "127.0.0.1:9", version: 1)
        let d = try EngineDecision.decide(.auto, snapshot: secure, probe: { Self.passed })
        #expect(d.engine == .nio)
        #expect(d.reason.contains("pool secure uses TLS"))
        #expect(throws: ServerError.self) { try EngineDecision.decide(.uring, snapshot: secure, probe: { Self.passed }) }
        let plain = try ProxHarness.compile(simpleProxyConfig, upstream: "127.0.0.1:9", version: 1)
        #expect(try EngineDecision.decide(.auto, snapshot: plain, probe: { Self.passed }).engine == .uring)
    }

    /// `server.engine: uring` in the config, through the real binary: the log line names the
    /// engine, and requests are proxied, kept alive and pipelined through it.
    @Test(.enabled(if: URingProbe.run().available, "io_uring is not available here"))
    func serveRunsOnURing() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let port = CLITests.freePort()
        let config = simpleProxyConfig.replacingOccurrences(of: "{upstream}", with: up.address)
            .replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:\(port)")
            .replacingOccurrences(of: "  access_log: \"off\"", with: "  access_log: \"off\"\n  engine: uring")
        let prox = try Serve(config: CLITests.temp("uring.yaml", config), port: port)
        let c = try TestClient(port: port)
        try c.send("GET /echo/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo/2 HTTP/1.1\r\nHost: a\r\n\r\n")
        for i in 1...2 {
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.text.contains("target=/echo/\(i)\n"))
        }
        let log = prox.stop()
        #expect(log.contains("engine: uring (server.engine is uring"), "\(log)")
        #expect(up.connections.withLockedValue { $0 } == 1)
    }

    /// The default (`auto`) serves on io_uring; a reload that brings a TLS pool, which the engine
    /// does not carry, is refused like an invalid config and the running snapshot keeps serving.
    @Test(.enabled(if: URingProbe.run().available, "io_uring is not available here"))
    func reloadTheEngineCannotCarryIsRefused() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let port = CLITests.freePort()
        let config = simpleProxyConfig.replacingOccurrences(of: "{upstream}", with: up.address)
            .replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:\(port)")
        let file = try CLITests.temp("uring-reload.yaml", config)
        let prox = try Serve(config: file, port: port)
        try config.replacingOccurrences(of: "      - address: \"\(up.address)\"",
                                        with: "      - address: \"\(up.address)\"\n    tls: { insecure_skip_verify: true }")
            .write(toFile: file, atomically: true, encoding: .utf8)
        kill(prox.process.processIdentifier, SIGHUP)
        #expect(try CLITests.eventually { prox.log.contains("reload rejected") })
        let c = try TestClient(port: port)
        try c.send("GET /echo/after HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        let log = prox.stop()
        #expect(log.contains("engine: uring (server.engine is auto"), "\(log)")
        #expect(log.contains("reload rejected; the running snapshot 1 keeps serving: this process serves on the io_uring engine, and pool backend uses TLS"), "\(log)")
        #expect(!log.contains("snapshot 2 is live"), "\(log)")
    }

    /// Every worker takes connections: each accepts on a socket of its own (SO_REUSEPORT). With
    /// one shared socket, one worker took all of them and a second thread sat idle.
    @Test(.enabled(if: URingProbe.run().available, "io_uring is not available here"))
    func connectionsSpreadOverTheWorkers() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let snapshot = try ProxHarness.compile(simpleProxyConfig, upstream: up.address, version: 1)
        let server = try ProxServer(snapshot: snapshot, threads: 2, logger: Logger(label: "test"), engine: .uring)
        defer { server.shutdown() }
        let port = try server.start()[0].port!
        var clients: [TestClient] = []
        for i in 0..<32 {
            let c = try TestClient(port: port)
            try c.send("GET /echo/\(i) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try c.readResponse().status == 200)
            clients.append(c)
        }
        // SwiftNIO's two loops carry no cleartext listener here; the two workers come last.
        let perLoop = server.openConnectionsPerLoop()
        #expect(perLoop.count == 4 && perLoop.reduce(0, +) == 32, "\(perLoop)")
        #expect(perLoop.suffix(2).allSatisfy { $0 > 0 }, "connections per loop: \(perLoop)")
    }

    /// Sharing the port among the workers does not let a second server share it: the port in
    /// use is refused as on SwiftNIO.
    @Test(.enabled(if: URingProbe.run().available, "io_uring is not available here"))
    func aSecondServerOnTheSamePortIsRefused() throws {
        let first = try ProxServer(snapshot: ProxHarness.compile(simpleProxyConfig, upstream: "127.0.0.1:9", version: 1),
                                   threads: 2, logger: Logger(label: "test"), engine: .uring)
        defer { first.shutdown() }
        let port = try first.start()[0].port!
        let config = simpleProxyConfig.replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:\(port)")
        let second = try ProxServer(snapshot: ProxHarness.compile(config, upstream: "127.0.0.1:9", version: 1),
                                    threads: 2, logger: Logger(label: "test"), engine: .uring)
        defer { second.shutdown() }
        #expect {
            try second.start()
        } throws: { error in
            "\(error)".contains("cannot listen on 127.0.0.1:\(port): the address is already in use")
        }
    }

    /// `prox serve --config F` on its own process; its standard error is collected.
    final class Serve: @unchecked Sendable {
        let process = Process()
        private let err = Pipe()
        private let collected = NIOLockedValueBox(Data())

        /// `fileLimit`: the process runs under `ulimit -n fileLimit` (a shell sets it, then
        /// becomes `prox`, so the process is still prox's).
        init(config: String, port: Int, fileLimit: Int? = nil) throws {
            let serve = ["serve", "--config", config, "--threads", "2", "--no-watch"]
            if let fileLimit {
                process.executableURL = URL(fileURLWithPath: "/bin/sh")
                process.arguments = ["-c", "ulimit -n \(fileLimit) && exec \"$0\" \"$@\"", CLITests.binary] + serve
            } else {
                process.executableURL = URL(fileURLWithPath: CLITests.binary)
                process.arguments = serve
            }
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            let box = collected
            err.fileHandleForReading.readabilityHandler = { h in
                let d = h.availableData
                box.withLockedValue { $0.append(d) }
            }
            try process.run()
            guard try CLITests.eventually(tries: 200, { (try? TestClient(port: port)) != nil }) else {
                _ = stop()
                throw TestError("prox serve did not listen on \(port)")
            }
        }

        var log: String { String(decoding: collected.withLockedValue { $0 }, as: UTF8.self) }

        /// Stops the process (SIGTERM, drain) and returns everything it logged.
        func stop() -> String {
            if process.isRunning { kill(process.processIdentifier, SIGTERM) }
            process.waitUntilExit()
            err.fileHandleForReading.readabilityHandler = nil
            let rest = err.fileHandleForReading.readDataToEndOfFile()
            collected.withLockedValue { $0.append(rest) }
            return log
        }
    }
}
#endif
