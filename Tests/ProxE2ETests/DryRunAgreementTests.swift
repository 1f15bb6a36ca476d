import Foundation
import Logging
import ProxConfig
import ProxCore
import Testing
@testable import ProxEngine

/// Dry-run must say what serve does. For each config (the golden ones and the embedded one),
/// every golden request and a set of generated ones (method case, HEAD, HTTP/1.0, absolute-form,
/// missing Host, bodies, raw bytes) go both through `DryRun.run` and, as bytes on a real socket,
/// through the in-process `ProxServer`, whose pools point at real echoing upstreams. Compared:
/// the route (serve's access log), the local answer (status, headers, body), the pool and the
/// endpoint (when the choice is not random), and the upstream request head as the upstream
/// received it. Generated request ids are normalized; everything else must be equal.
@Suite(.serialized) struct DryRunAgreementTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// One request: how dry-run is given it, and the bytes a client sends serve.
    struct Case {
        var label: String
        var dry: DryRunRequest
        var bytes: [UInt8]
    }

    /// The bytes a client sends for a dry-run request: written out here, independently of
    /// dry-run's own construction, as curl would send them.
    static func clientBytes(_ r: DryRunRequest) -> [UInt8] {
        if let raw = r.raw { return raw }
        var target = r.url
        var headers = r.headers
        if let sep = r.url.range(of: "://") {
            let rest = r.url[sep.upperBound...]
            let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            if !r.absoluteForm {
                target = String(rest[slash...])
                if !target.hasPrefix("/") { target = "/" + target }
            }
            if !headers.contains(where: { $0.0.lowercased() == "host" }) { headers.insert(("Host", String(rest[..<slash])), at: 0) }
        }
        var s = "\(r.method) \(target) HTTP/1.\(r.versionMinor)\r\n"
        for (n, v) in headers { s += "\(n): \(v)\r\n" }
        if !r.cookies.isEmpty { s += "Cookie: " + r.cookies.map { "\($0.0)=\($0.1)" }.joined(separator: "; ") + "\r\n" }
        if let n = r.bodyBytes { s += "Content-Length: \(n)\r\n" }
        s += "\r\n"
        var out = Array(s.utf8)
        if let n = r.bodyBytes, n <= 65_536 { out += [UInt8](repeating: UInt8(ascii: "b"), count: Int(n)) }
        if r.headers.contains(where: { $0.0.lowercased() == "transfer-encoding" }) { out += Array("5\r\nhello\r\n0\r\n\r\n".utf8) }
        return out
    }

    static func goldenCases(_ name: String) throws -> [Case] {
        let text = try String(contentsOf: root.appendingPathComponent("Tests/Golden/\(name).requests"), encoding: .utf8)
        return text.split(separator: "\n").compactMap { line -> Case? in
            guard !line.hasPrefix("#"), !line.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
            let r = GoldenDryRunTests.parse(String(line))
            // serve sees the real peer (127.0.0.1); a spoofed client address cannot be sent.
            if r.clientIP != "127.0.0.1" { return nil }
            return Case(label: String(line), dry: r, bytes: clientBytes(r))
        }
    }

    /// Requests the golden files do not express, on host `host`.
    static func generatedCases(host: String, paths: [String]) -> [Case] {
        var out: [Case] = []
        func add(_ label: String, _ r: DryRunRequest) { out.append(Case(label: label, dry: r, bytes: clientBytes(r))) }
        func raw(_ label: String, _ s: String) {
            let b = Array(s.utf8)
            out.append(Case(label: label, dry: DryRunRequest(method: "", url: "", raw: b), bytes: b))
        }
        for p in paths {
            for m in ["GET", "get", "Get", "HEAD", "POST", "DELETE"] { add("\(m) \(p)", DryRunRequest(method: m, url: "http://\(host)\(p)")) }
            add("HTTP/1.0 \(p)", DryRunRequest(method: "GET", url: "http://\(host)\(p)", versionMinor: 0))
            add("HTTP/1.0 no Host \(p)", DryRunRequest(method: "GET", url: p, versionMinor: 0))
            add("no Host \(p)", DryRunRequest(method: "GET", url: p))
            add("absolute-form \(p)", DryRunRequest(method: "GET", url: "http://\(host)\(p)", absoluteForm: true))
            add("absolute-form, other Host \(p)",
                DryRunRequest(method: "GET", url: "http://\(host)\(p)", headers: [("Host", "other.invalid")], absoluteForm: true))
            add("body \(p)", DryRunRequest(method: "POST", url: "http://\(host)\(p)", bodyBytes: 5))
            add("chunked \(p)", DryRunRequest(method: "POST", url: "http://\(host)\(p)", headers: [("Transfer-Encoding", "chunked")]))
            raw("raw \(p)", "GET \(p) HTTP/1.1\r\nhost: \(host.uppercased())\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
            raw("raw bare LF \(p)", "GET \(p) HTTP/1.1\nHost: \(host)\n\n")
        }
        raw("raw bad method", "G(T / HTTP/1.1\r\nHost: \(host)\r\n\r\n")
        raw("raw two Hosts", "GET / HTTP/1.1\r\nHost: \(host)\r\nHost: b\r\n\r\n")
        raw("raw HTTP/2.0", "GET / HTTP/2.0\r\nHost: \(host)\r\n\r\n")
        return out
    }

    /// The config's snapshot with every listener on 127.0.0.1 port 0, every endpoint pointing at
    /// a real echoing upstream of its own, and the access log in `log`.
    static func liveSnapshot(_ s: Snapshot, log: String, upstreams: inout [String: TestUpstream]) throws -> Snapshot {
        let listeners = s.listeners.map { l in
            ListenerSpec(id: l.id, index: l.index, host: "127.0.0.1", port: 0, maxHeaderBytes: l.maxHeaderBytes, maxHeaders: l.maxHeaders,
                         maxConnections: l.maxConnections, maxURIBytes: l.maxURIBytes, trustedProxies: l.trustedProxies)
        }
        var pools: [PoolSpec] = []
        for p in s.pools {
            var eps: [EndpointSpec] = []
            for e in p.endpoints {
                if upstreams[e.address] == nil { upstreams[e.address] = try TestUpstream() }
                eps.append(EndpointSpec(host: "127.0.0.1", port: upstreams[e.address]!.port, weight: e.weight))
            }
            pools.append(PoolSpec(id: p.id, index: p.index, endpoints: eps, balancer: p.balancer, connectTimeout: 2_000,
                                  responseHeaderTimeout: 5_000))
        }
        let settings = ServerSettings(accessLog: log, serverName: s.settings.serverName, drainTimeout: 1_000)
        return Snapshot(version: 1, source: s.source, listeners: listeners, routes: s.routes, pools: pools, router: s.router,
                        settings: settings)
    }

    static func normalize(_ s: String) -> String {
        s.replacingOccurrences(of: "[0-9a-f]{32}", with: "<request-id>", options: .regularExpression)
            // serve's `Date` is the moment it writes; dry-run says so in place of a date.
            .replacingOccurrences(of: "^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT$",
                                  with: "(time of sending)", options: .regularExpression)
    }

    func check(config name: String, yaml: String, cases extra: [Case]) throws {
        let compiled = ConfigCompiler.compile(text: yaml, fileName: name, version: 1)
        let original = try #require(compiled.snapshot, "\(name) does not compile")
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("prox-agree-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        var upstreams: [String: TestUpstream] = [:]
        defer { for u in upstreams.values { u.stop() } }
        let snapshot = try Self.liveSnapshot(original, log: log, upstreams: &upstreams)
        var logger = Logger(label: "prox-agree")
        logger.logLevel = .critical
        let server = try ProxServer(snapshot: snapshot, threads: 1, logger: logger, engine: ProxHarness.engine(for: snapshot))
        defer { server.shutdown() }
        let ports = try server.start().map { $0.port! }

        var cases = extra
        if FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("Tests/Golden/\(name).requests").path) {
            cases = try Self.goldenCases(name) + cases
        }
        struct Seen { var c: Case; var dry: DryRunResult; var live: TestResponse }
        var seen: [Seen] = []
        for c in cases {
            let dry = try DryRun.run(c.dry, snapshot: snapshot)
            // A body too large to send here, to an upstream: nothing to compare.
            if let n = c.dry.bodyBytes, n > 65_536, dry.local == nil { continue }
            let li = c.dry.listener.flatMap { id in snapshot.listeners.firstIndex { $0.id == id } } ?? 0
            let client = try TestClient(port: ports[li])
            try client.send(c.bytes)
            let isHead = c.bytes.starts(with: Array("HEAD ".utf8))
            let live = try client.readResponse(method: isHead ? "HEAD" : "GET")
            seen.append(Seen(c: c, dry: dry, live: live))
        }

        // serve's access log: one line per request, in order (one event loop, one request at a time).
        var lines: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            lines = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            if lines.count >= seen.count { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        try #require(lines.count == seen.count, "\(name): \(lines.count) access-log lines for \(seen.count) requests")

        for (i, s) in seen.enumerated() {
            let where_ = "\(name): \(s.c.label)"
            let entry = lines[i]
            let liveRoute = (entry["route"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            #expect(s.dry.route == liveRoute, "\(where_): route: dry-run \(s.dry.route ?? "none"), serve \(liveRoute ?? "none")")
            if let local = s.dry.local {
                #expect(local.status == s.live.status, "\(where_): status: dry-run \(local.status), serve \(s.live.status)")
                for h in local.headers {
                    let live = s.live.header(h[0]).map(Self.normalize)
                    #expect(live == Self.normalize(h[1]), "\(where_): response header \(h[0]): dry-run '\(h[1])', serve '\(live ?? "absent")'")
                }
                #expect(Self.normalize(local.body) == Self.normalize(s.live.text), "\(where_): body: dry-run '\(local.body)', serve '\(s.live.text)'")
                #expect(s.live.header("x-upstream") == nil, "\(where_): dry-run answers locally, serve proxied")
                continue
            }
            guard let up = s.dry.upstream else { Issue.record("\(where_): dry-run has neither answer nor upstream"); continue }
            // serve forwards a method as received (`get`); the test upstream's parser (llhttp)
            // knows only the registered upper-case methods and refuses it. Route, pool and
            // endpoint are still compared (the access log has them); the head cannot be.
            let upstreamKnowsMethod = up.method.allSatisfy { $0.isUppercase }
            #expect(!upstreamKnowsMethod || (s.live.status == 200 && s.live.header("x-upstream") == "test"),
                    "\(where_): dry-run proxies to \(up.pool), serve answered \(s.live.status) \(s.live.header("x-prox-error") ?? "")")
            let livePool = entry["pool"] as? String ?? ""
            let liveEndpoint = entry["endpoint"] as? String ?? ""
            let route = snapshot.routes.first { $0.id == s.dry.route }
            if let split = route?.split {
                // serve draws at random: its pool must be one of the split's.
                #expect(split.names.contains(livePool), "\(where_): serve chose pool \(livePool), not in the split \(split.names)")
            } else {
                #expect(up.pool == livePool, "\(where_): pool: dry-run \(up.pool), serve \(livePool)")
            }
            if let pool = snapshot.pools.first(where: { $0.id == livePool }) {
                if pool.endpoints.count == 1 && up.pool == livePool {
                    #expect(up.endpoint == liveEndpoint, "\(where_): endpoint: dry-run \(up.endpoint), serve \(liveEndpoint)")
                } else {
                    #expect(pool.endpoints.contains { $0.address == liveEndpoint }, "\(where_): serve's endpoint \(liveEndpoint) is not in \(livePool)")
                }
            }
            // What the chain and serve add to the answer on the way back (`Via` among them).
            if upstreamKnowsMethod {
                for h in s.dry.responseHeaders {
                    let live = s.live.header(h[0]).map(Self.normalize)
                    #expect(live == Self.normalize(h[1]), "\(where_): response header \(h[0]) on the way back: dry-run '\(h[1])', serve '\(live ?? "absent")'")
                }
            }
            // The upstream head as the upstream received it (the echo lists it; a HEAD answer has no body).
            if !upstreamKnowsMethod || (s.live.text.isEmpty && s.c.bytes.starts(with: Array("HEAD ".utf8))) { continue }
            var liveHead: [String] = []
            var requestLine = ("", "", "")
            for l in s.live.text.split(separator: "\n") {
                if l.hasPrefix("method=") { requestLine.0 = String(l.dropFirst(7)) }
                if l.hasPrefix("target=") { requestLine.1 = String(l.dropFirst(7)) }
                if l.hasPrefix("version=") { requestLine.2 = String(l.dropFirst(8)) }
                if l.hasPrefix("h:") { liveHead.append(Self.normalize(String(l.dropFirst(2)))) }
            }
            let dryLine = up.wire.split(separator: "\n").first.map(String.init) ?? ""
            #expect(dryLine == "\(requestLine.0) \(requestLine.1) \(requestLine.2)", "\(where_): upstream request line: dry-run '\(dryLine)', upstream got '\(requestLine.0) \(requestLine.1) \(requestLine.2)'")
            let dryHead = up.headers.map { Self.normalize($0[0].lowercased() + "=" + $0[1]) }
            #expect(dryHead == liveHead, "\(where_): upstream headers:\n  dry-run  \(dryHead)\n  upstream \(liveHead)")
        }
    }

    @Test(arguments: ["basic", "canary", "multi-host", "rewrite"])
    func goldenConfigsAgree(name: String) throws {
        let yaml = try String(contentsOf: Self.root.appendingPathComponent("configs/\(name).yaml"), encoding: .utf8)
        let host: String
        switch name {
        case "multi-host": host = "api.example.com"
        default: host = "shop.example"
        }
        let paths = name == "basic" ? ["/healthz", "/upload/a.png", "/cart?x=1"] : name == "rewrite" ? ["/api/v1/users?page=2", "/pricing"] : ["/healthz", "/v1/users/1", "/"]
        try check(config: name, yaml: yaml, cases: Self.generatedCases(host: host, paths: paths))
    }

    /// A raw request with a body: dry-run runs the request-body phase over it, and its verdict is
    /// serve's (two limits, the smaller refusing; a body within them; a malformed chunk).
    @Test func requestBodyVerdictsAgree() throws {
        let yaml = """
        version: 1
        listeners: [{ id: main, address: "127.0.0.1:8080" }]
        pools: [{ id: up, endpoints: [{ address: "127.0.0.1:9001" }] }]
        routes:
          - id: limited
            match: { path: { prefix: / } }
            chain: [{ body_limit: { max_bytes: 1MiB } }, { body_limit: { max_bytes: 10 } }]
            proxy: { pool: up }
        """
        let head = "POST /form HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        let cases = [
            ("chunked over the smaller limit", head + "6\r\n012345\r\n6\r\n678901\r\n0\r\n\r\n"),
            ("chunked within the limits", head + "6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n"),
            ("Content-Length within the limits", "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
            ("malformed chunk", head + "6\r\n012345\r\nzz\r\n"),
        ].map { label, text in Case(label: label, dry: DryRunRequest(method: "", url: "", raw: Array(text.utf8)), bytes: Array(text.utf8)) }
        let snapshot = try #require(ConfigCompiler.compile(text: yaml, fileName: "body.yaml", version: 1).snapshot)
        #expect(try DryRun.run(cases[0].dry, snapshot: snapshot).local?.status == 413)
        #expect(try DryRun.run(cases[1].dry, snapshot: snapshot).upstream != nil)
        #expect(try DryRun.run(cases[3].dry, snapshot: snapshot).local?.status == 400)
        try check(config: "body", yaml: yaml, cases: cases)
    }

    @Test func embeddedConfigAgrees() throws {
        try check(config: "default", yaml: DefaultConfig.yaml,
                  cases: Self.generatedCases(host: "localhost:8080", paths: ["/old/guide", "/api/hello", "/", "/nothing"]))
    }
}
