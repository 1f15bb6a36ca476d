import Foundation
import Testing
import ProxCore
@testable import ProxEngine

/// `server.trace`: a request with the trace header and the right token gets its real chain trace
/// in the access log and `X-Prox-Trace-Id` on the response; anything else gets nothing, and the
/// header never reaches a stage or the upstream.
@Suite struct LiveTraceE2ETests {
    static let token = "0123456789abcdef0123456789abcdef"

    static func config(log: String, tokenFile: String) -> String {
        """
        version: 1
        server:
          access_log: "\(log)"
          trace: {token_file: "\(tokenFile)"}
        listeners: [{id: main, address: "127.0.0.1:0"}]
        pools: [{id: app, endpoints: ["{upstream}"]}]
        routes:
          - id: api
            match: {path: {prefix: /api/}}
            chain:
              - headers: {request: {set: {X-Seen: "yes"}}}
            proxy: app
          - id: health
            respond: {status: 200, body: "ok"}
        """
    }

    @Test func tracedUntracedAndWrongToken() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let dir = NSTemporaryDirectory() + "prox-trace-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try (Self.token + "\n").write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        let log = dir + "/access.log"
        let prox = try ProxHarness(Self.config(log: log, tokenFile: dir + "/token"), upstream: up.address)
        let c = try prox.client()

        // 1. The right token: traced.
        try c.send("GET /api/x HTTP/1.1\r\nHost: a\r\nX-Prox-Trace: \(Self.token)\r\n\r\n")
        let traced = try c.readResponse()
        #expect(traced.status == 200)
        #expect(!traced.text.contains("h:x-prox-trace="), "the upstream must not see the trace header")
        #expect(traced.text.contains("h:x-seen=yes"))
        let id = try #require(traced.header("X-Prox-Trace-Id"))
        // 2. A wrong token: stripped, not traced.
        try c.send("GET /api/y HTTP/1.1\r\nHost: a\r\nX-Prox-Trace: \(Self.token.dropLast())0\r\n\r\n")
        let wrong = try c.readResponse()
        #expect(wrong.header("X-Prox-Trace-Id") == nil)
        #expect(!wrong.text.contains("h:x-prox-trace="))
        // 3. No header; 4. a local answer, traced.
        try c.send("GET /api/z HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try c.readResponse().header("X-Prox-Trace-Id") == nil)
        try c.send("GET /health HTTP/1.1\r\nHost: a\r\nX-Prox-Trace: \(Self.token)\r\n\r\n")
        let local = try c.readResponse()
        #expect(local.header("X-Prox-Trace-Id") != nil)
        prox.stop()

        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["request_id"] as? String == id, "X-Prox-Trace-Id names the access-log line")
        let trace = try #require(first["trace"] as? [String: Any])
        #expect(trace["route"] as? String == "api")
        let stages = try #require(trace["stages"] as? [[String: Any]])
        let names = stages.compactMap { $0["stage"] as? String }
        #expect(names.first == "router")
        #expect(names.contains("headers"))
        #expect(names.contains("upstream connect"))
        #expect(names.last == "upstream first byte")
        let times = stages.compactMap { $0["at_us"] as? Int }
        #expect(times.count == stages.count, "every entry has a time")
        #expect(times == times.sorted(), "times grow along the trace")
        #expect((trace["upstream"] as? [String: Any])?["pool"] as? String == "app")
        for l in lines[1...2] { #expect(!l.contains("\"trace\""), "\(l)") }
        #expect(lines[3].contains("\"trace\":{"))
    }

    /// The token compare: equal only when every byte and the length are.
    @Test func tokenCompare() {
        let s = LiveTraceSettings(header: .init("X-Prox-Trace"), token: Array("abcdefghijklmnop".utf8))
        #expect(s.accepts("abcdefghijklmnop"))
        #expect(!s.accepts("abcdefghijklmnoq"))
        #expect(!s.accepts("abcdefghijklmno"))
        #expect(!s.accepts("abcdefghijklmnopabcdefghijklmnop"))
        #expect(!s.accepts(String(repeating: "a", count: 16 + 256)))
        #expect(!s.accepts(""))
    }

    /// A token file that is missing or too short is a positioned config error.
    @Test func tokenFileErrors() throws {
        let dir = NSTemporaryDirectory() + "prox-trace-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "short".write(toFile: dir + "/short", atomically: true, encoding: .utf8)
        for (file, message) in [(dir + "/missing", "cannot read the trace token file"), (dir + "/short", "is 5 bytes; it must be at least 16")] {
            #expect(throws: (any Error).self) { try ProxHarness.compile(Self.config(log: "off", tokenFile: file), upstream: "127.0.0.1:9", version: 1) }
            do { _ = try ProxHarness.compile(Self.config(log: "off", tokenFile: file), upstream: "127.0.0.1:9", version: 1) } catch {
                #expect("\(error)".contains(message), "\(error)")
                #expect("\(error)".contains("test.yaml:4:"), "\(error)")
            }
        }
    }
}
