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
        let c1 = try prox.client()
        try c1.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n")
        let r1 = try c1.readResponse()
        #expect(r1.status == 413)
        #expect(r1.header("x-request-id") != nil)

        let c2 = try prox.client()
        var req = "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        for _ in 0..<3 { req += "200\r\n" + String(repeating: "z", count: 512) + "\r\n" }
        req += "0\r\n\r\n"
        try c2.send(req)
        let r2 = try c2.readResponse()
        #expect(r2.status == 413)

        let c3 = try prox.client()
        try c3.send("POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n100\r\n" + String(repeating: "k", count: 256) + "\r\n0\r\n\r\n")
        let r3 = try c3.readResponse()
        #expect(r3.status == 200)
        #expect(r3.text.hasPrefix("bytes=256 "))
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
