import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import ProxEngine

/// What a new user tripped on under `serve` (issue 8, "Fix what a new user tripped on"): each
/// test failed on the main of the day.
@Suite(.serialized) struct NewUserE2ETests {
    static func config(log: String, drain: String = "30s", extra: String = "") -> String {
        """
        version: 1
        server: {access_log: "\(log)", drain_timeout: \(drain)\(extra)}
        listeners: [{id: main, address: "127.0.0.1:0"}]
        pools:
          - id: backend
            endpoints: [{address: "{upstream}"}]
        routes:
          - id: local
            match: {path: {prefix: /local}}
            respond: {status: 200, body: "ok"}
          - id: moved
            match: {path: {exact: /old}}
            redirect: {status: 301, location: /new}
          - id: all
            proxy: backend
        """
    }

    static func tempPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("prox-\(UUID().uuidString)-\(name)").path
    }

    /// The access log's lines, once there are at least `count` (the log is written in batches).
    static func logLines(_ path: String, atLeast count: Int) -> [String] {
        for _ in 0..<100 {
            let lines = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
            if lines.count >= count { return lines }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    // MARK: 4. requests refused while parsing

    @Test func accessLogSaysWhatWasKnownOfARequestRefusedWhileParsing() throws {
        let log = Self.tempPath("access.log")
        let prox = try ProxHarness(Self.config(log: log))
        defer { prox.stop() }
        let garbage = try prox.client()
        try garbage.send("GARBAGE\r\n\r\n")
        #expect(try garbage.readResponse().status == 400)
        _ = Self.logLines(log, atLeast: 1)
        let noHost = try prox.client()
        try noHost.send("DELETE /items/7?x=1 HTTP/1.1\r\n\r\n")
        #expect(try noHost.readResponse().status == 400)
        let lines = Self.logLines(log, atLeast: 2)
        #expect(lines.count == 2, "\(lines)")
        guard lines.count == 2 else { return }
        #expect(lines[0].contains(#""method":null,"host":null,"path":null"#), "\(lines[0])")
        #expect(lines[0].contains(#""status":400"#))
        #expect(lines[1].contains(#""method":"DELETE","host":null,"path":"/items/7""#), "\(lines[1])")
        #expect(lines[1].contains(#""error":"missing_host""#), "\(lines[1])")
        #expect(!lines.joined().contains(#""method":"GET""#), "nothing invented")
    }

    // MARK: 6. a request cut by the drain

    @Test func requestCutByTheDrainIsLoggedAsTheDrainsDoing() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let log = Self.tempPath("access.log")
        let prox = try ProxHarness(Self.config(log: log), upstream: up.address)
        let c = try prox.client()
        try c.send("GET /slow?ms=3000 HTTP/1.1\r\nHost: a\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.2)
        #expect(prox.server.drain(timeout: .milliseconds(200)) == false)
        let r = try c.readResponse()
        #expect(r.status == 503, "not 502 upstream_reset: \(r.status) \(r.headers)")
        #expect(r.header("x-prox-error") == "drain_timeout", "\(r.headers)")
        prox.stop()
        let lines = Self.logLines(log, atLeast: 1)
        #expect(lines.count == 1, "\(lines)")
        #expect(lines.first?.contains(#""error":"drain_timeout""#) == true, "\(lines)")
        #expect(lines.first?.contains(#""path":"/slow""#) == true)
    }

    // MARK: 7. Date and Server on Prox's own answers, Via on proxied responses

    @Test func ownAnswersCarryDateAndServerAndProxiedResponsesVia() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(Self.config(log: "off"), upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        let imfDate = #/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT$/#
        for path in ["/local", "/old"] {
            try c.send("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
            let r = try c.readResponse()
            #expect(r.status == (path == "/old" ? 301 : 200))
            #expect(r.header("server") == "prox", "\(path): \(r.headers)")
            let date = try #require(r.header("date"), "\(path): \(r.headers)")
            #expect(date.wholeMatch(of: imfDate) != nil, "\(date)")
            #expect(r.header("via") == nil)
        }
        try c.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        let proxied = try c.readResponse()
        #expect(proxied.status == 200)
        #expect(proxied.headers.filter { $0.0.lowercased() == "via" }.map(\.1) == ["1.1 prox"], "\(proxied.headers)")
        #expect(proxied.text.contains("h:via=1.1 prox"), "the request upstream carries Via too")
        // The test upstream sends no Date: Prox adds one (RFC 9110 §6.6.1), and no Server.
        let added = try #require(proxied.header("date"), "\(proxied.headers)")
        #expect(added.wholeMatch(of: imfDate) != nil, "\(added)")
        #expect(proxied.header("server") == nil, "\(proxied.headers)")
        try c.send("GET /dated HTTP/1.1\r\nHost: a\r\n\r\n")
        let dated = try c.readResponse()
        #expect(dated.status == 200)
        #expect(dated.headers.filter { $0.0.lowercased() == "date" }.map(\.1) == ["Sun, 06 Nov 1994 08:49:37 GMT"],
                "the upstream's own Date is kept, and no second one added: \(dated.headers)")
    }

    @Test func responseViaCanBeSwitchedOff() throws {
        let up = try TestUpstream()
        defer { up.stop() }
        let prox = try ProxHarness(Self.config(log: "off", extra: ", response_via: false"), upstream: up.address)
        defer { prox.stop() }
        let c = try prox.client()
        try c.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.header("via") == nil, "\(r.headers)")
        #expect(r.text.contains("h:via=1.1 prox"), "requests keep theirs")
    }
}
