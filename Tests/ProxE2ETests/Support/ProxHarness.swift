import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ProxConfig
import ProxCore
import ProxEngine
import ProxMain

/// The real proxy, in process: compiles a config (with `{upstream}` and `{upstream2}` filled
/// in), binds its listeners on 127.0.0.1 port 0, and serves. Shared with client threads.
final class ProxHarness: Sendable {
    let server: ProxServer
    let port: Int
    /// The snapshot version of the last reload.
    let version = NIOLockedValueBox(1)

    init(_ yaml: String, upstream: String = "127.0.0.1:9", upstream2: String = "127.0.0.1:9", threads: Int = 1,
         log: CapturedLog? = nil) throws {
        let snapshot = try ProxHarness.compile(yaml, upstream: upstream, upstream2: upstream2, version: 1)
        var logger = log.map { l in Logger(label: "prox-test") { _ in CapturingLogHandler(log: l) } } ?? Logger(label: "prox-test")
        logger.logLevel = log == nil ? .error : .warning
        server = try ProxServer(snapshot: snapshot, threads: threads, logger: logger, engine: ProxHarness.engine(for: snapshot))
        let addrs = try server.start()
        port = addrs[0].port!
    }

    /// The engine end-to-end tests run on: what `prox serve`'s default, `server.engine: auto`,
    /// picks (io_uring where the probe passes and the engine carries the config, else SwiftNIO);
    /// `PROX_TEST_ENGINE=nio` runs them on SwiftNIO. CI runs the suite once each way.
    static func engine(for snapshot: Snapshot) -> ServerEngine {
        if ProcessInfo.processInfo.environment["PROX_TEST_ENGINE"] == "nio" { return .nio }
        _ = announceEngine
        return (try? EngineDecision.decide(.auto, snapshot: snapshot).engine) ?? .nio
    }

    /// Said once: whether the end-to-end tests get the io_uring engine here.
    private static let announceEngine: Void = {
        let p = URingProbe.run()
        FileHandle.standardError.write(Data((p.available ? "end-to-end tests run on the io_uring engine (PROX_TEST_ENGINE=nio: on SwiftNIO)\n"
            : "\(p.reason); end-to-end tests run on SwiftNIO\n").utf8))
    }()

    static func compile(_ yaml: String, upstream: String, upstream2: String = "127.0.0.1:9", version: Int) throws -> Snapshot {
        let text = yaml.replacingOccurrences(of: "{upstream}", with: upstream).replacingOccurrences(of: "{upstream2}", with: upstream2)
        // With the filters the shipped `prox` has (built-ins + filters/), as `prox serve` compiles.
        let r = ConfigCompiler.compile(text: text, fileName: "test.yaml", version: version, filters: try ProxMain.shippedFilters())
        guard let s = r.snapshot, r.diagnostics.allSatisfy({ $0.severity != .error }) else {
            throw TestError("config does not compile:\n" + DiagnosticFormatter.text(r.diagnostics))
        }
        return s
    }

    func reload(_ yaml: String, upstream: String, upstream2: String = "127.0.0.1:9") throws {
        let next = version.withLockedValue { $0 += 1; return $0 }
        server.swap(try ProxHarness.compile(yaml, upstream: upstream, upstream2: upstream2, version: next))
    }

    func client() throws -> TestClient { try TestClient(port: port) }

    func stop() { server.shutdown() }
}

/// Error-log lines the proxy wrote (message, then its metadata as `key=value`), for tests that
/// check what the log says about a failure.
final class CapturedLog: Sendable {
    let lines = NIOLockedValueBox<[String]>([])
    var all: [String] { lines.withLockedValue { $0 } }
}

struct CapturingLogHandler: LogHandler {
    let log: CapturedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let meta = (metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        log.lines.withLockedValue { $0.append("\(message) \(meta)") }
    }
}

/// A minimal config: one listener on port 0, one route proxying everything to `{upstream}`.
let simpleProxyConfig = """
version: 1
server:
  access_log: "off"
listeners:
  - id: main
    address: 127.0.0.1:0
pools:
  - id: backend
    endpoints:
      - address: "{upstream}"
routes:
  - id: all
    match:
      path:
        prefix: /
    proxy:
      pool: backend
"""
