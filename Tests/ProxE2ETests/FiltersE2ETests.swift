import Foundation
import Testing
@testable import ProxEngine

@Suite(.serialized) struct FiltersE2ETests {
    static let config = """
    version: 1
    server: { access_log: "{log}" }
    listeners:
      - id: main
        address: "127.0.0.1:0"
    pools:
      - id: backend
        endpoints: [{ address: "{upstream}" }]
    chains:
      standard:
        - request_id: {}
        - headers:
            request:
              set: { X-Client: "{client_ip}", X-Version: "{path.version}" }
              remove: [X-Debug]
            response:
              set: { X-Served-By: prox }
    routes:
      - id: versioned
        match: { path: { regex: "^/api/(?<version>v[0-9]+)/" } }
        chain: standard
        rewrite: { path_regex: "^/api/v[0-9]+/(.*)$", path_replacement: "/$1" }
        proxy: { pool: backend }
      - id: limited
        match: { path: { prefix: /upload } }
        chain:
          - request_id: {}
          - body_limit: { max_bytes: 1KiB }
        proxy: { pool: backend }
      - id: limited-twice
        match: { path: { prefix: /twice } }
        chain:
          - body_limit: { max_bytes: 1MiB }
          - body_limit: { max_bytes: 100 }
        proxy: { pool: backend }
      - id: private
        match: { path: { prefix: /private } }
        chain:
          - ip_access: { deny: ["127.0.0.0/8"] }
        respond: { status: 200, body: "secret" }
    """

    @Test func requestIdHeadersRewriteAndAccessLog() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let log = NSTemporaryDirectory() + "prox-access-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let prox = try ProxHarness(Self.config.replacingOccurrences(of: "{log}", with: log), upstream: up.address)
        let c = try prox.client()
        try c.send("GET /api/v2/users?id=7 HTTP/1.1\r\nHost: api.test\r\nX-Debug: 1\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 200)
        let id = try #require(r.header("x-request-id"))
        #expect(r.header("x-served-by") == "prox")
        #expect(r.text.contains("target=/users?id=7\n"))
        #expect(r.text.contains("h:x-request-id=\(id)\n"))
        #expect(r.text.contains("h:x-client=127.0.0.1\n"))
        #expect(r.text.contains("h:x-version=v2\n"))
        #expect(!r.text.contains("x-debug"))
        prox.stop()
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        let entry = try #require(lines.first)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String: Any])
        #expect(obj["request_id"] as? String == id)
        #expect(obj["route"] as? String == "versioned")
        #expect(obj["pool"] as? String == "backend")
        #expect(obj["status"] as? Int == 200)
        #expect(obj["path"] as? String == "/api/v2/users")
        #expect(obj["endpoint"] as? String == up.address)
        #expect(obj["upstream_ms"] is Double)
    }

    @Test func bodyLimitRejectsContentLengthAndChunkedOverflow() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(Self.config.replacingOccurrences(of: "{log}", with: "off"), upstream: up.address)
        defer { prox.stop() }
        func chunked(_ path: String, _ sizes: [Int], end: Bool = true) -> String {
            var req = "POST \(path) HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            for n in sizes { req += String(n, radix: 16) + "\r\n" + String(repeating: "z", count: n) + "\r\n" }
            return end ? req + "0\r\n\r\n" : req
        }

        // Content-Length over the limit: 413 from the head alone, the connection closed.
        let c1 = try prox.client()
        try c1.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n")
        let r1 = try c1.readResponse()
        #expect(r1.status == 413)
        #expect(r1.header("x-prox-error") == "body_too_large")
        #expect(r1.header("x-request-id") != nil)
        #expect(r1.text.contains("the limit is 1024"))
        #expect(c1.waitForClose())

        // A chunked body over the limit that came with the head: the request-body phase refuses
        // it before the upstream is contacted; the connection closes (the rest is unread).
        let c2 = try prox.client()
        try c2.send(chunked("/upload", [512, 512, 512]))
        let r2 = try c2.readResponse()
        #expect(r2.status == 413)
        #expect(r2.header("x-prox-error") == "body_too_large")
        #expect(r2.header("x-request-id").map { r2.text.contains($0) } == true)
        #expect(r2.text.contains("over the limit of 1024 bytes"))
        #expect(c2.waitForClose())

        // Two limits on a route: each holds, the smaller refuses.
        let c3 = try prox.client()
        try c3.send(chunked("/twice", [60, 60]))
        let r3 = try c3.readResponse()
        #expect(r3.status == 413)
        #expect(r3.text.contains("over the limit of 100 bytes"))
        #expect(c3.waitForClose())
        #expect(up.connections.withLockedValue { $0 } == 0, "no refusal above contacted the upstream")
        #expect(up.requests.withLockedValue { $0 } == 0)

        // Within the limits: proxied, whole.
        let c4 = try prox.client()
        try c4.send(chunked("/upload", [256]))
        let r4 = try c4.readResponse()
        #expect(r4.status == 200)
        #expect(r4.text.hasPrefix("bytes=256 "))
        try c4.send(chunked("/twice", [60, 40]))
        let r5 = try c4.readResponse()
        #expect(r5.status == 200)
        #expect(r5.header("x-upstream") == "test")

        // Over the limit after the upstream was contacted (the rest of the body came later): still
        // 413 while the upstream has not answered, and the connection closes.
        let c6 = try prox.client()
        try c6.send(chunked("/upload", [1000], end: false))
        let deadline = Date().addingTimeInterval(5)
        while up.requests.withLockedValue({ $0 }) < 3 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(up.requests.withLockedValue { $0 } == 3, "the head went upstream")
        try c6.send("20\r\n" + String(repeating: "z", count: 32) + "\r\n")
        let r6 = try c6.readResponse()
        #expect(r6.status == 413)
        #expect(r6.header("x-prox-error") == "body_too_large")
        #expect(c6.waitForClose())
    }

    @Test func ipAccessDenies() throws {
        let prox = try ProxHarness(Self.config.replacingOccurrences(of: "{log}", with: "off"), upstream: "127.0.0.1:9")
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /private HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 403)
        #expect(r.header("x-request-id") != nil)
    }
}
