import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ProxConfig
import ProxCore
import ProxMain
import Testing
@testable import ProxEngine

/// A test filter that reports what each request's context holds when its chain reaches it, and
/// what its completion phase is told.
struct ReuseProbeConfig: ConfigObject {
    var max: Int64 = 0
    init() {}
    static let doc = "Test-only."
    static var fields: [ConfigField<Self>] {[
        .field("max", \.max, .size(min: 0), doc: "Unused."),
    ]}
}

enum ReuseProbeFactory: FilterFactory {
    static let name = "reuse_probe"
    static let summary = "Test-only: reports the context at the start of the chain and each completion."
    static let atStart = NIOLockedValueBox<[String]>([])
    static let completions = NIOLockedValueBox<[(String, ExchangeSummary)]>([])
    static func makeStage(_ config: ReuseProbeConfig, _ context: inout FilterBuildContext) -> (any Stage)? {
        ReuseProbeStage()
    }
}

struct ReuseProbeStage: Stage {
    var kind: String { ReuseProbeFactory.name }
    var phases: StagePhases { [.completion] }
    private enum Seen: ContextSlot { typealias Value = Bool }

    func request(_ ctx: RequestContext) -> Verdict {
        let line = "pool=\(ctx.poolID ?? "-") endpoint=\(ctx.endpoint ?? "-") ran=\(ctx.stagesRun) slot=\(ctx[slot: Seen.self] ?? false)"
        ReuseProbeFactory.atStart.withLockedValue { $0.append(line) }
        ctx[slot: Seen.self] = true
        return .next
    }

    func completed(_ ctx: RequestContext, _ summary: ExchangeSummary) {
        let line = "\(ctx.route?.id ?? "-") pool=\(ctx.poolID ?? "-") endpoint=\(ctx.endpoint ?? "-")"
        ReuseProbeFactory.completions.withLockedValue { $0.append((line, summary)) }
    }
}

/// A keep-alive connection serves requests of every kind one after the other; the exchange and
/// context of one (reused for the next when nothing else holds them) must carry nothing over.
@Suite(.serialized) struct ExchangeReuseE2ETests {
    static let config = """
    version: 1
    server: { access_log: "off" }
    listeners: [{ id: main, address: "127.0.0.1:0" }]
    pools:
      - id: backend
        endpoints: [{ address: "{upstream}" }]
      - id: dead
        endpoints: [{ address: "127.0.0.1:9" }]
    routes:
      - id: local
        match: { path: { prefix: /local } }
        chain: [{ reuse_probe: {} }]
        respond: { status: 200, body: "local\\n" }
      - id: dead
        match: { path: { prefix: /dead } }
        chain: [{ reuse_probe: {} }]
        proxy: { pool: dead }
      - id: all
        match: { path: { prefix: / } }
        chain: [request_id, { reuse_probe: {} }]
        proxy: { pool: backend }
    """

    @Test func nothingCarriesOverBetweenRequestsOnOneConnection() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        ReuseProbeFactory.atStart.withLockedValue { $0 = [] }
        ReuseProbeFactory.completions.withLockedValue { $0 = [] }
        let registry = try ProxMain.shippedFilters().adding([FilterDescriptor(ReuseProbeFactory.self)], origin: .custom)
        let r = ConfigCompiler.compile(text: Self.config.replacingOccurrences(of: "{upstream}", with: up.address),
                                       fileName: "reuse.yaml", version: 1, filters: registry)
        let snapshot = try #require(r.snapshot, "\(r.diagnostics)")
        var logger = Logger(label: "prox-test")
        logger.logLevel = .critical
        let server = try ProxServer(snapshot: snapshot, threads: 1, logger: logger, engine: ProxHarness.engine(for: snapshot))
        try server.start()
        defer { server.shutdown() }

        let c = try TestClient(port: server.boundPorts[0])
        func get(_ path: String) throws -> TestResponse {
            try c.send("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
            return try c.readResponse()
        }
        let first = try get("/echo/1")
        #expect(first.status == 200)
        #expect(try get("/local").status == 200)
        let dead = try get("/dead")
        #expect(dead.status == 502)
        let second = try get("/echo/2")
        #expect(second.status == 200)
        #expect(try get("/local").status == 200)

        // The upstream got each request's own target and id.
        #expect(first.text.contains("target=/echo/1\n") && second.text.contains("target=/echo/2\n"))
        let id1 = first.text.split(separator: "\n").first { $0.hasPrefix("h:x-request-id=") }
        let id2 = second.text.split(separator: "\n").first { $0.hasPrefix("h:x-request-id=") }
        #expect(id1 != nil && id2 != nil && id1 != id2)

        // At the start of each chain: no pool, endpoint or slot of an earlier request, no stage run.
        let atStart = ReuseProbeFactory.atStart.withLockedValue { $0 }
        #expect(atStart == [String](repeating: "pool=- endpoint=- ran=0 slot=false", count: 5), "\(atStart)")

        let deadline = Date().addingTimeInterval(5)
        while ReuseProbeFactory.completions.withLockedValue({ $0.count }) < 5 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        let done = ReuseProbeFactory.completions.withLockedValue { $0 }
        try #require(done.count == 5)
        let backend = "all pool=backend endpoint=\(up.address)"
        #expect(done.map(\.0) == [backend, "local pool=- endpoint=-", "dead pool=dead endpoint=127.0.0.1:9", backend, "local pool=- endpoint=-"])
        let s = done.map(\.1)
        #expect(s[0].status == 200 && s[0].error == "" && s[0].upstreamMicros >= 0)
        #expect(s[1].status == 200 && s[1].error == "" && s[1].upstreamMicros == -1)
        #expect(s[2].status == 502 && s[2].error == "upstream_connect_failed")
        #expect(s[3].status == 200 && s[3].error == "" && s[3].upstreamMicros >= 0)
        #expect(s[4].status == 200 && s[4].error == "" && s[4].upstreamMicros == -1 && s[4].bytesOut == s[1].bytesOut)
    }
}
