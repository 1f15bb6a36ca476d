import NIOCore
import NIOEmbedded
import ProxCore
import ProxUpstream

/// A request described on the command line or in a `prox check` file.
public struct DryRunRequest: Sendable {
    public var method: String
    /// An absolute URL (`http://host/path?q`) or an origin-form target (`/path?q`).
    public var url: String
    public var headers: [(String, String)]
    public var cookies: [(String, String)]
    public var clientIP: String
    /// Listener id; nil means the first listener.
    public var listener: String?
    public var bodyBytes: Int64?

    public init(method: String, url: String, headers: [(String, String)] = [], cookies: [(String, String)] = [],
                clientIP: String = "127.0.0.1", listener: String? = nil, bodyBytes: Int64? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.cookies = cookies
        self.clientIP = clientIP
        self.listener = listener
        self.bodyBytes = bodyBytes
    }

    /// Parses `'GET http://host/path'` (the method may be omitted: GET).
    public static func parse(_ line: String) -> (method: String, url: String) {
        let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
        if parts.count == 2 { return (parts[0].uppercased(), parts[1].trimmingCharacters(in: " ")) }
        return ("GET", line)
    }
}

/// What `serve` would do with a request, found by running the same compiled router and stage
/// code with the I/O boundary stubbed: nothing is sent.
public struct DryRunResult: Sendable {
    public struct Considered: Sendable, Codable {
        public var route: String
        public var origin: String
        /// nil when this route matched.
        public var mismatch: String?
    }
    public struct Upstream: Sendable, Codable {
        public var pool: String
        public var balancer: String
        public var endpoint: String
        public var why: String
        public var method: String
        public var target: String
        public var path: String
        public var headers: [[String]]
        /// The request head exactly as it would be written upstream.
        public var wire: String
    }
    public struct Local: Sendable, Codable {
        public var status: Int
        public var headers: [[String]]
        public var body: String
    }

    public var request: String
    public var client: String
    public var listener: String
    public var considered: [Considered]
    public var route: String?
    public var trace: [TraceEntry]
    public var upstream: Upstream?
    public var local: Local?
    /// Response headers after the response side of the chain (for upstream answers, what the
    /// chain adds to any response).
    public var responseHeaders: [[String]]
}

public enum DryRunError: Error, CustomStringConvertible {
    case badRequest(String)
    public var description: String {
        switch self { case .badRequest(let m): return m }
    }
}

public enum DryRun {
    /// Runs `request` through `snapshot`'s router and chain.
    public static func run(_ request: DryRunRequest, snapshot: Snapshot) throws -> DryRunResult {
        guard let method = validMethod(request.method) else { throw DryRunError.badRequest("'\(request.method)' is not a valid method") }
        var target = request.url
        var headers = request.headers
        if let r = request.url.range(of: "://") {
            let rest = request.url[r.upperBound...]
            let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            let authority = String(rest[..<slash])
            target = String(rest[slash...])
            if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
            if !headers.contains(where: { $0.0.lowercased() == "host" }) { headers.insert(("Host", authority), at: 0) }
        }
        guard target.hasPrefix("/") else { throw DryRunError.badRequest("the URL must be absolute (http://host/path) or start with /") }
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { headers.insert(("Host", "localhost"), at: 0) }
        if !request.cookies.isEmpty {
            headers.append(("Cookie", request.cookies.map { "\($0.0)=\($0.1)" }.joined(separator: "; ")))
        }
        if let n = request.bodyBytes { headers.append(("Content-Length", String(n))) }
        guard let ip = IPAddress(request.clientIP) else { throw DryRunError.badRequest("'\(request.clientIP)' is not an IP address") }
        let listener: ListenerSpec
        if let id = request.listener {
            guard let l = snapshot.listeners.first(where: { $0.id == id }) else {
                throw DryRunError.badRequest("no listener '\(id)'; listeners: \(snapshot.listeners.map(\.id).joined(separator: ", "))")
            }
            listener = l
        } else {
            guard let l = snapshot.listeners.first else { throw DryRunError.badRequest("the config has no listener") }
            listener = l
        }
        // The same parse `serve` does, over the bytes a client would send.
        var wire = ByteBuffer()
        wire.writeString("\(method) \(target) HTTP/1.1\r\n")
        for (n, v) in headers { wire.writeString("\(n): \(v)\r\n") }
        wire.writeString("\r\n")
        var parser = HTTP1RequestParser(limits: HTTP1Limits(listener: listener))
        guard let ev = parser.next(&wire) else { throw DryRunError.badRequest("the request is incomplete") }
        let head: RequestHead
        switch ev {
        case .head(let h): head = h
        case .error(let e): throw DryRunError.badRequest("serve would answer \(e.status) \(e.category): \(e.detail)")
        default: throw DryRunError.badRequest("the request could not be parsed")
        }

        let loop = EmbeddedEventLoop()
        let ctx = RequestContext(head: head, snapshot: snapshot, listener: listener, client: ip, clientPort: 0,
                                 eventLoop: loop, trace: Trace())
        var result = DryRunResult(request: "\(method) \(request.url)", client: request.clientIP, listener: listener.id,
                                  considered: [], route: nil, trace: [], upstream: nil, local: nil, responseHeaders: [])
        if head.droppedHeaders > 0 {
            // The parser dropped them; the names are only looked up here, to explain.
            let names = headers.map(\.0).filter { $0.utf8.contains(UInt8(ascii: "_")) }
            ctx.record("parser", looked: "header names " + names.joined(separator: ", "),
                       decided: "dropped \(head.droppedHeaders) header line(s)",
                       why: "names with '_' are dropped unless the listener sets allow_underscores_in_headers")
        }
        var step = RequestFlow.begin(ctx)
        // Explain every route before the chosen one with the same predicate the router uses.
        let chosen = ctx.route?.index ?? snapshot.routes.count
        for r in snapshot.routes.prefix(chosen) {
            result.considered.append(.init(route: r.id, origin: r.origin,
                                           mismatch: r.match.mismatch(head, listener: listener.index) ?? "matches, but the router skipped it (bug)"))
        }
        if let r = ctx.route { result.considered.append(.init(route: r.id, origin: r.origin, mismatch: nil)) }
        result.route = ctx.route?.id
        // A suspended stage resumes on the stub loop.
        var guardCount = 0
        while case .suspend(let f) = step, guardCount < 100 {
            loop.run()
            guardCount += 1
            switch try? f.wait() {
            case .some(let v): step = RequestFlow.resume(ctx, with: v)
            case .none: step = .respond(RequestFlow.errorResponse(ctx, 500, "stage_failed"))
            }
        }
        switch step {
        case .respond(let r):
            let h = RequestFlow.responseHead(for: r, ctx, serverName: snapshot.settings.serverName)
            result.local = .init(status: h.status, headers: h.fields.effective.map { [$0.name, $0.value] },
                                 body: ctx.head.method == .head ? "" : r.body)
            result.responseHeaders = result.local!.headers
        case .proxy(let pool):
            let registry = BalancerRegistry(seed: 1)
            guard let choice = registry.withBalancer(pool, { $0.pick() }) else {
                let h = RequestFlow.responseHead(for: RequestFlow.errorResponse(ctx, 503, "no_upstream_endpoint"), ctx,
                                                 serverName: snapshot.settings.serverName)
                result.local = .init(status: 503, headers: h.fields.effective.map { [$0.name, $0.value] }, body: "")
                break
            }
            let ep = pool.endpoints[choice.index]
            ctx.endpoint = ep.address
            ctx.record("upstream", looked: "pool \(pool.id): \(pool.endpoints.map(\.address).joined(separator: ", "))",
                       decided: "endpoint \(ep.address)", why: choice.why)
            RequestFlow.prepareUpstreamHead(ctx, serverName: snapshot.settings.serverName)
            let framing: BodyFraming
            switch ctx.head.framing {
            case .chunked: framing = .chunked
            case .contentLength(let n): framing = .contentLength(n)
            default: framing = .none
            }
            var out = ByteBuffer()
            HTTP1Writer.writeRequestHead(ctx.head, framing: framing, into: &out)
            let wireText = out.readString(length: out.readableBytes) ?? ""
            var lines = wireText.split(separator: "\r\n", omittingEmptySubsequences: true).map(String.init)
            let requestLine = lines.isEmpty ? "" : lines.removeFirst()
            let hdrs: [[String]] = lines.compactMap { l in
                guard let c = l.firstIndex(of: ":") else { return nil }
                return [String(l[..<c]), String(l[l.index(after: c)...]).trimmingCharacters(in: " ")]
            }
            result.upstream = .init(pool: pool.id, balancer: pool.balancer.rawValue, endpoint: ep.address, why: choice.why,
                                    method: ctx.head.method.description, target: ctx.head.effectiveTarget,
                                    path: ctx.head.effectivePath, headers: hdrs, wire: requestLine + "\n" + lines.joined(separator: "\n"))
            // What the response side of the chain would add to the upstream's answer.
            var resp = ResponseHead(status: 200)
            if let route = ctx.route { route.chain.runResponse(ctx, &resp, ranCount: ctx.stagesRun) }
            result.responseHeaders = resp.fields.effective.map { [$0.name, $0.value] }
        case .suspend:
            result.local = .init(status: 500, headers: [], body: "a stage did not finish")
        }
        result.trace = ctx.trace?.entries ?? []
        return result
    }

    static func validMethod(_ m: String) -> String? {
        guard !m.isEmpty, m.utf8.allSatisfy(isTokenByte) else { return nil }
        return m
    }

    /// The human-readable report `prox dry-run` prints.
    public static func text(_ r: DryRunResult) -> String {
        var o = "request: \(r.request)\n  client \(r.client), listener \(r.listener)\n\nroutes considered:\n"
        if r.considered.isEmpty { o += "  (none: the config has no routes)\n" }
        for (i, c) in r.considered.enumerated() {
            if let m = c.mismatch {
                o += "  \(i + 1). \(c.route)  no: \(m)  [\(c.origin)]\n"
            } else {
                o += "  \(i + 1). \(c.route)  MATCH  [\(c.origin)]\n"
            }
        }
        if r.route == nil { o += "  => no route matches: serve answers 404 no_route\n" }
        o += "\nstages:\n"
        for (i, t) in r.trace.enumerated() {
            o += "  \(i + 1). \(t.stage)\n     looked at: \(t.looked)\n     decided:   \(t.decided)\n     because:   \(t.why)\n"
        }
        if let u = r.upstream {
            o += "\nupstream request (not sent):\n  pool \(u.pool) (\(u.balancer)) -> \(u.endpoint): \(u.why)\n"
            for line in u.wire.split(separator: "\n") { o += "  | \(line)\n" }
            if !r.responseHeaders.isEmpty {
                o += "\nadded to the response on the way back:\n"
                for h in r.responseHeaders { o += "  \(h[0]): \(h[1])\n" }
            }
        }
        if let l = r.local {
            o += "\nlocal response (no upstream contacted):\n  \(l.status) \(reasonPhrase(l.status))\n"
            for h in l.headers { o += "  \(h[0]): \(h[1])\n" }
            if !l.body.isEmpty {
                o += "\n"
                for line in l.body.split(separator: "\n", omittingEmptySubsequences: false) { o += "  > \(line)\n" }
            }
        }
        return o
    }
}

extension String {
    func range(of needle: String) -> Range<String.Index>? {
        guard !needle.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) { return i..<index(i, offsetBy: needle.count) }
            i = index(after: i)
        }
        return nil
    }
}
