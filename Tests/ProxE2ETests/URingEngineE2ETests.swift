#if os(Linux)
import Foundation
import NIOCore
import ProxCore
@testable import ProxEngine
import Testing

/// The io_uring engine as `prox serve` picks it. The whole end-to-end suite also runs on it
/// (`PROX_TEST_ENGINE=uring`, as CI does); these are the engine's own cases.
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
        let f = try CLITests.temp("uring.yaml", config)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLITests.binary)
        p.arguments = ["serve", "--config", f, "--threads", "2", "--no-watch"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        #expect(try CLITests.eventually { (try? TestClient(port: port)) != nil })
        let c = try TestClient(port: port)
        try c.send("GET /echo/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo/2 HTTP/1.1\r\nHost: a\r\n\r\n")
        for i in 1...2 {
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.text.contains("target=/echo/\(i)\n"))
        }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("engine: uring (server.engine is uring"), "\(log)")
        #expect(up.connections.withLockedValue { $0 } == 1)
    }
}
#endif
