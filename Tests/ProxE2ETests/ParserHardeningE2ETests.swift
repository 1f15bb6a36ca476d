import Foundation
import NIOCore
import ProxCore
import Testing
@testable import ProxEngine

/// Issue #6 hardening, end to end: HTTP/1.x minors above 1.
@Suite(.serialized) struct ParserHardeningE2ETests {
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
