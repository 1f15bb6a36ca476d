import Foundation
import Logging
import ProxMain
import NIOConcurrencyHelpers
import NIOCore
import ProxConfig
import ProxCore
import Testing
@testable import ProxEngine

/// A test filter that uses every later phase: it counts request body bytes in its own typed
/// slot and refuses past `max` (request body), counts response body bytes (response body), and
/// reports each exchange's summary (completion).
struct PhaseProbeConfig: ConfigObject {
    var max: Int64 = 0
    init() {}
    static let doc = "Test-only."
    static var fields: [ConfigField<Self>] {[
        .field("max", \.max, .size(min: 0), required: true, doc: "Largest body."),
    ]}
}

enum PhaseProbeFactory: FilterFactory {
    static let name = "phase_probe"
    static let summary = "Test-only: exercises the body and completion phases."
    static let seen = NIOLockedValueBox<[(ExchangeSummary, Int64)]>([])
    static func makeStage(_ config: PhaseProbeConfig, _ context: inout FilterBuildContext) -> (any Stage)? {
        PhaseProbeStage(max: config.max)
    }
}

struct PhaseProbeStage: Stage {
    let max: Int64
    var kind: String { PhaseProbeFactory.name }
    var phases: StagePhases { [.requestBody, .responseBody, .completion] }
    private enum RequestBytes: ContextSlot { typealias Value = Int64 }
    private enum ResponseBytes: ContextSlot { typealias Value = Int64 }

    func request(_ ctx: RequestContext) -> Verdict { .next }

    func requestBody(_ ctx: RequestContext, _ part: ByteBuffer) -> BodyVerdict {
        let n = (ctx[slot: RequestBytes.self] ?? 0) + Int64(part.readableBytes)
        ctx[slot: RequestBytes.self] = n
        if n > max { return .respond(LocalResponse.error(413, "probe_refused", requestID: ctx.requestID)) }
        return .next
    }

    func responseBody(_ ctx: RequestContext, _ part: ByteBuffer) {
        ctx[slot: ResponseBytes.self] = (ctx[slot: ResponseBytes.self] ?? 0) + Int64(part.readableBytes)
    }

    func completed(_ ctx: RequestContext, _ summary: ExchangeSummary) {
        PhaseProbeFactory.seen.withLockedValue { $0.append((summary, ctx[slot: ResponseBytes.self] ?? 0)) }
    }
}

@Suite(.serialized) struct StagePhasesE2ETests {
    static let config = """
    version: 1
    server: { access_log: "off" }
    listeners: [{ id: main, address: "127.0.0.1:0" }]
    pools:
      - id: backend
        endpoints: [{ address: "{upstream}" }]
    routes:
      - id: all
        match: { path: { prefix: / } }
        chain: [{ phase_probe: { max: 1000 } }]
        proxy: { pool: backend }
    """

    func serve(_ up: TestUpstream) throws -> ProxServer {
        let registry = try ProxMain.shippedFilters().adding([FilterDescriptor(PhaseProbeFactory.self)], origin: .custom)
        let r = ConfigCompiler.compile(text: Self.config.replacingOccurrences(of: "{upstream}", with: up.address),
                                       fileName: "phases.yaml", version: 1, filters: registry)
        let snapshot = try #require(r.snapshot, "\(r.diagnostics)")
        var logger = Logger(label: "prox-test")
        logger.logLevel = .error
        let server = try ProxServer(snapshot: snapshot, threads: 1, logger: logger, engine: ProxHarness.engine(for: snapshot))
        try server.start()
        return server
    }

    @Test func bodyResponseBodyAndCompletionPhasesRun() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        PhaseProbeFactory.seen.withLockedValue { $0 = [] }
        let server = try serve(up)
        defer { server.shutdown() }
        let port = server.boundPorts[0]

        // Within the limit: proxied; the response body is counted and the completion reported.
        let c = try TestClient(port: port)
        try c.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 600\r\n\r\n" + String(repeating: "x", count: 600))
        let ok = try c.readResponse()
        #expect(ok.status == 200)
        #expect(ok.text.hasPrefix("bytes=600 "))

        // Over it, chunked (its size unknown up front): the body phase refuses with the stage's
        // own answer, and the connection closes (the rest of the body is unread).
        let d = try TestClient(port: port)
        var req = "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        for _ in 0..<4 { req += "190\r\n" + String(repeating: "y", count: 400) + "\r\n" }
        try d.send(req)
        let refused = try d.readResponse()
        #expect(refused.status == 413)
        #expect(refused.header("x-prox-error") == "probe_refused")
        #expect(d.waitForClose())

        let deadline = Date().addingTimeInterval(5)
        while PhaseProbeFactory.seen.withLockedValue({ $0.count }) < 2 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        let seen = PhaseProbeFactory.seen.withLockedValue { $0 }
        #expect(seen.count == 2)
        if seen.count == 2 {
            #expect(seen[0].0.status == 200)
            #expect(seen[0].0.bytesIn == 600)
            #expect(seen[0].1 == Int64(ok.text.utf8.count), "the response body phase saw every byte")
            #expect(seen[0].0.upstreamMicros >= 0)
            #expect(seen[1].0.status == 413)
            #expect(seen[1].0.error == "probe_refused")
        }
    }
}
