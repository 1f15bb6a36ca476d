import Foundation
import NIOCore
import ProxCore
import Testing
@testable import ProxEngine

/// Issue #6 hardening, end to end: header names with `_`, and HTTP/1.x minors above 1.
@Suite(.serialized) struct ParserHardeningE2ETests {
    static let allowConfig = simpleProxyConfig.replacingOccurrences(
        of: "    address: 127.0.0.1:0\n", with: "    address: 127.0.0.1:0\n    allow_underscores_in_headers: true\n")

    /// (listener allows underscores, the upstream sees the underscored lines)
    @Test(arguments: [(false, false), (true, true)])
    func underscoredHeaders(allow: Bool, forwarded: Bool) throws {
        #expect(Self.allowConfig != simpleProxyConfig)
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(allow ? Self.allowConfig : simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        // A CGI-style backend would read Transfer_Encoding as Transfer-Encoding; Prox frames by
        // Content-Length, so the upstream must get Content-Length and (by default) nothing else.
        try c.send("POST /echo HTTP/1.1\r\nHost: a\r\nX_Secret: s\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n"
                   + "X-Kept: yes\r\n\r\nhello")
        let r = try c.readResponse()
        #expect(r.status == 200)
        let t = r.text
        #expect(t.contains("body=5\n"))
        #expect(t.contains("h:content-length=5\n"))
        #expect(t.contains("h:x-kept=yes\n"))
        #expect(!t.contains("h:transfer-encoding"))
        #expect(t.contains("h:x_secret=s\n") == forwarded, "\(t)")
        #expect(t.contains("h:transfer_encoding=chunked\n") == forwarded, "\(t)")
        // The connection stays usable: the body was framed by Content-Length.
        try c.send("GET /echo/2 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try c.readResponse().text.contains("target=/echo/2\n"))
    }

    /// The access log counts the dropped lines (`dropped_headers`, only when nonzero).
    @Test func accessLogCountsDroppedHeaders() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let log = NSTemporaryDirectory() + "prox-access-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let config = simpleProxyConfig.replacingOccurrences(of: "access_log: \"off\"", with: "access_log: \"\(log)\"")
        let prox = try ProxHarness(config, upstream: up.address)
        let c = try prox.client()
        try c.send("GET /a HTTP/1.1\r\nHost: a\r\nX_One: 1\r\nX_Two: 2\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        try c.send("GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try c.readResponse().status == 200)
        prox.stop()
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.contains("\"dropped_headers\":2") == true, "\(lines)")
        #expect(lines.last?.contains("dropped_headers") == false, "\(lines)")
    }

    /// `prox dry-run` parses with the listener's limits too: same drop, and the trace says so.
    @Test(arguments: [false, true])
    func dryRunDropsLikeServe(allow: Bool) throws {
        let s = try ProxHarness.compile(allow ? Self.allowConfig : simpleProxyConfig, upstream: "127.0.0.1:9", version: 1)
        let r = try DryRun.run(DryRunRequest(method: "GET", url: "http://a/x", headers: [("X_Secret", "s"), ("X-Kept", "1")]), snapshot: s)
        let up = try #require(r.upstream)
        #expect(up.headers.contains { $0 == ["X_Secret", "s"] } == allow, "\(up.headers)")
        #expect(up.headers.contains { $0 == ["X-Kept", "1"] })
        let parser = r.trace.first { $0.stage == "parser" }
        #expect((parser != nil) == !allow)
        #expect(parser?.looked.contains("X_Secret") ?? allow)
        #expect(parser?.decided == (allow ? nil : "dropped 1 header line(s)"))
    }

    /// (request version, status Prox answers, version the upstream sees)
    @Test(arguments: [("HTTP/1.1", 200, "HTTP/1.1"), ("HTTP/1.2", 200, "HTTP/1.1"), ("HTTP/1.9", 200, "HTTP/1.1"),
                      ("HTTP/2.0", 505, ""), ("HTTP/3.1", 505, "")])
    func higherMinorVersionIsServedAs11(version: String, status: Int, upstreamVersion: String) throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(simpleProxyConfig, upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /echo \(version)\r\nHost: a\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == status)
        #expect(r.statusLine.hasPrefix("HTTP/1.1 \(status) "), "\(r.statusLine)")
        if status == 200 {
            #expect(r.text.contains("version=\(upstreamVersion)\n"), "\(r.text)")
            // Handled as 1.1: keep-alive by default.
            try c.send("GET /echo/again \(version)\r\nHost: a\r\n\r\n")
            #expect(try c.readResponse().text.contains("target=/echo/again\n"))
        }
    }
}
