import NIOCore
import NIOEmbedded
import ProxCore
import ProxUpstream

/// A request described on the command line or in a `prox check` file, or given as raw bytes.
/// It is turned into the bytes a client would send and parsed by serve's `HTTP1RequestParser`.
public struct DryRunRequest: Sendable {
    /// Sent as given, case and all: methods are case-sensitive (RFC 9110 9.1), as in serve.
    public var method: String
    /// An absolute URL (`http://host/path?q`) or an origin-form target (`/path?q`).
    public var url: String
    public var headers: [(String, String)]
    public var cookies: [(String, String)]
    public var clientIP: String
    /// Listener id; nil means the first listener.
    public var listener: String?
    public var bodyBytes: Int64?
    /// 1 for HTTP/1.1, 0 for HTTP/1.0.
    public var versionMinor: Int
    /// Send an absolute URL as the request target (absolute-form, as a client talking to a
    /// proxy does) instead of origin-form with the URL's authority as Host.
    public var absoluteForm: Bool
    /// The whole request as bytes (`--raw`): replaces method, URL, version, headers, cookies
    /// and body size. A body after the head goes through the route's request-body phase.
    public var raw: [UInt8]?
    /// A fixed random draw (`--random`) for the traffic split and the endpoint pick.
    public var random: UInt64?
    /// The server name the ClientHello carries (`--sni`), on a TLS listener; nil: no SNI.
    public var sni: String?

    public init(method: String, url: String, headers: [(String, String)] = [], cookies: [(String, String)] = [],
                clientIP: String = "127.0.0.1", listener: String? = nil, bodyBytes: Int64? = nil, versionMinor: Int = 1,
                absoluteForm: Bool = false, raw: [UInt8]? = nil, random: UInt64? = nil, sni: String? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.cookies = cookies
        self.clientIP = clientIP
        self.listener = listener
        self.bodyBytes = bodyBytes
        self.versionMinor = versionMinor
        self.absoluteForm = absoluteForm
        self.raw = raw
        self.random = random
        self.sni = sni
    }

    /// Parses `'GET http://host/path'` (the method may be omitted: GET). The method is kept as
    /// written: `get` is not `GET`, to serve or to dry-run.
    public static func parse(_ line: String) -> (method: String, url: String) {
        let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
        if parts.count == 2 { return (parts[0], parts[1].trimmingCharacters(in: " ")) }
        return ("GET", line)
    }

    /// A raw request as read from a file or stdin (the CLI's `--raw`; `DryRun.run` itself takes
    /// `raw` byte for byte). When the bytes hold no CR at all, they were
    /// written with LF line endings (an editor, a heredoc): each LF becomes CRLF, since HTTP/1.1
    /// requires CRLF and serve refuses a bare LF. Bytes with any CR are taken exactly as given.
    /// Returns the bytes to parse and, when converted, a note saying so.
    public static func rawRequest(_ bytes: [UInt8]) -> (bytes: [UInt8], note: String?) {
        guard !bytes.contains(13) else { return (bytes, nil) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 16)
        for b in bytes {
            if b == 10 { out.append(13) }
            out.append(b)
        }
        return (out, "the raw request had LF line endings only: each LF was sent as CRLF")
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
        /// With the pool's `tls`: how the connection to the endpoint is secured (nil: cleartext).
        public var tls: String?
        public var method: String
        public var target: String
        public var path: String
        public var headers: [[String]]
        /// The request head exactly as it would be written upstream.
        public var wire: String
    }
    /// The certificate a TLS listener's handshake would present.
    public struct TLS: Sendable, Codable {
        /// The ClientHello's server name; nil: none.
        public var sni: String?
        public var certificate: String
        public var key: String
        public var names: [String]
        public var isDefault: Bool
        /// How it was chosen: `exact NAME`, `wildcard *.NAME`, or `default`.
        public var selectedBy: String
        public var minVersion: String
        public var alpn: [String]
        /// With `client_auth`: `required` or `optional`, and the CA bundle (nil: no client certificates asked for).
        public var clientAuth: String?
        enum CodingKeys: String, CodingKey {
            case sni, certificate, key, names, isDefault = "default", selectedBy = "selected_by", minVersion = "min_version", alpn
            case clientAuth = "client_auth"
        }
    }
    /// On a TLS listener with `l4_routes`: what the ClientHello's SNI decided, before TLS.
    public struct L4: Sendable, Codable {
        /// The ClientHello's server name, normalized; nil: none.
        public var sni: String?
        /// The L4 route that took it; nil: none did.
        public var route: String?
        public var origin: String?
        /// `pass`, `drop`, or `terminate` (no L4 route: TLS and HTTP routing as usual).
        public var action: String
        public var pool: String?
        public var endpoint: String?
        public var why: String
    }
    public struct Local: Sendable, Codable {
        public var status: Int
        public var headers: [[String]]
        public var body: String
    }

    public var request: String
    public var client: String
    public var listener: String
    /// On a TLS listener: the certificate the handshake would present (nil when an L4 route
    /// passes or drops the connection: Prox makes no handshake).
    public var tls: TLS?
    /// On a TLS listener with `l4_routes`: the L4 decision.
    public var l4: L4?
    public var considered: [Considered]
    public var route: String?
    public var trace: [TraceEntry]
    public var upstream: Upstream?
    public var local: Local?
    /// Response headers after the response side of the chain (for upstream answers, what the
    /// chain adds to any response).
    public var responseHeaders: [[String]]
    /// What the report cannot know or had to assume (an illustrative endpoint pick, a converted
    /// raw request).
    public var notes: [String] = []
}

public enum DryRunError: Error, CustomStringConvertible {
    case badRequest(String)
    public var description: String {
        switch self { case .badRequest(let m): return m }
    }
}

public enum DryRun {
    /// The start of the body given, as `serve` would hold it for a stage that asked for `upTo`
    /// bytes: the prefix, whether it is all of the body, and a note when the request given is short.
    static func readBody(_ given: GivenBody, upTo: Int) -> (ByteBuffer, Bool, String?) {
        var body = ByteBuffer()
        for var piece in given.pieces where body.readableBytes < upTo {
            var slice = piece.readSlice(length: min(piece.readableBytes, upTo - body.readableBytes))!
            body.writeBuffer(&slice)
        }
        if given.ended && given.bytes <= Int64(upTo) { return (body, true, nil) }
        if body.readableBytes >= upTo { return (body, false, nil) }
        return (body, false, "the request given holds only \(body.readableBytes) bytes of its body: the stage sees those (serve would wait for up to \(upTo)); give the whole request with --raw")
    }

    /// Runs `request` through `snapshot`'s router and chain. `explain: false` leaves out why each
    /// earlier route did not match (`considered`), which costs a look at every one of them:
    /// `prox diff` runs thousands of requests and needs only the outcome.
    public static func run(_ request: DryRunRequest, snapshot: Snapshot, explain: Bool = true) throws -> DryRunResult {
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
        guard let ip = IPAddress(request.clientIP) else { throw DryRunError.badRequest("'\(request.clientIP)' is not an IP address") }
        var tls = try tlsSelection(request.sni, listener, snapshot)
        var l4: DryRunResult.L4? = nil
        if let table = listener.l4 {
            // The same table and lookup serve's ClientHello peek uses, over the name as the
            // parser normalizes it.
            var sni = request.sni?.lowercased()
            if sni?.hasSuffix(".") == true { sni?.removeLast() }
            l4 = l4Decision(table, sni, snapshot, random: request.random)
            if l4?.action != "terminate" {
                tls = nil
                let label = "\(request.method) \(request.url)"
                return DryRunResult(request: label, client: request.clientIP, listener: listener.id, tls: nil, l4: l4,
                                    considered: [], route: nil, trace: [], upstream: nil, local: nil, responseHeaders: [])
            }
        }
        let notes: [String] = []
        let label: String
        var wire = ByteBuffer()
        if let raw = request.raw {
            // Exactly these bytes (the CLI may have converted LF line endings first: `rawRequest`).
            wire.writeBytes(raw)
            let firstLine = raw.prefix { $0 != 13 && $0 != 10 }
            label = "raw: " + String(decoding: firstLine, as: UTF8.self)
        } else {
            try requestBytes(request, into: &wire)
            label = "\(request.method) \(request.url)" + (request.versionMinor == 0 ? " HTTP/1.0" : "")
                + (request.absoluteForm ? " (absolute-form)" : "")
        }
        var result = DryRunResult(request: label, client: request.clientIP, listener: listener.id, tls: tls, l4: l4,
                                  considered: [], route: nil, trace: [], upstream: nil, local: nil, responseHeaders: [], notes: notes)

        // The same parse `serve` does, over the bytes a client would send.
        var parser = HTTP1RequestParser(limits: HTTP1Limits(listener: listener))
        guard let ev = parser.next(&wire) else {
            throw DryRunError.badRequest("the request head is incomplete (no empty line ends it): serve would wait for the rest until the listener's client_header timeout")
        }
        let head: RequestHead
        switch ev {
        case .head(let h): head = h
        case .error(let e):
            // As serve answers a malformed head: no route, no chain, the error, and the connection closed.
            let ctx = RequestContext(head: RequestHead.make(method: .get, target: "/", headers: []), snapshot: snapshot,
                                     listener: listener, client: ip, clientPort: 0, scheme: listener.scheme, eventLoop: nil, trace: Trace())
            ctx.record("parser", looked: "the request head as received", decided: "refuse \(e.status) \(e.category)",
                       why: e.detail + "; serve answers without routing and closes the connection")
            let r = RequestFlow.errorResponse(ctx, e.status, e.category, detail: e.detail)
            let h = RequestFlow.responseHead(for: r, ctx, serverName: snapshot.settings.serverName)
            result.local = .init(status: h.status, headers: Self.localHeaders(h, snapshot.settings), body: r.body)
            result.responseHeaders = result.local!.headers
            result.trace = ctx.trace?.entries ?? []
            return result
        default: throw DryRunError.badRequest("the request could not be parsed")
        }

        let loop = EmbeddedEventLoop()
        let ctx = RequestContext(head: head, snapshot: snapshot, listener: listener, client: ip, clientPort: 0,
                                 scheme: listener.scheme, eventLoop: loop, trace: Trace())
        ctx.dryRun = true
        if head.droppedHeaders > 0 {
            // The parser dropped them; the names are only looked up here, to explain.
            let names = request.headers.map(\.0).filter { $0.utf8.contains(UInt8(ascii: "_")) }
            ctx.record("parser", looked: names.isEmpty ? "header names with '_'" : "header names " + names.joined(separator: ", "),
                       decided: "dropped \(head.droppedHeaders) header line(s)",
                       why: "names with '_' are dropped unless the listener sets allow_underscores_in_headers")
        }
        ctx.randomOverride = request.random
        var step = RequestFlow.begin(ctx)
        // Explain every route before the chosen one with the same predicate the router uses.
        let chosen = explain ? ctx.route?.index ?? snapshot.routes.count : 0
        for r in snapshot.routes.prefix(chosen) {
            result.considered.append(.init(route: r.id, origin: r.origin,
                                           mismatch: r.match.mismatch(head, listener: listener.index) ?? "matches, but the router skipped it (bug)"))
        }
        if let r = ctx.route { result.considered.append(.init(route: r.id, origin: r.origin, mismatch: nil)) }
        result.route = ctx.route?.id
        // Only a raw request gives bytes after the head; they go through the same parser as in
        // serve, and the same stage code.
        let given = frameBody(&parser, &wire)
        // A suspended stage resumes on the stub loop; a stage that needs the body gets the start
        // of the body given.
        var guardCount = 0
        loop: while guardCount < 100 {
            guardCount += 1
            switch step {
            case .suspend(let f):
                loop.run()
                switch try? f.wait() {
                case .some(let v): step = RequestFlow.resume(ctx, with: v)
                case .none: step = .respond(RequestFlow.errorResponse(ctx, 500, "stage_failed"))
                }
            case .readBody(let upTo):
                let (body, complete, note) = readBody(given, upTo: upTo)
                if let note { result.notes.append(note) }
                step = RequestFlow.bodyRead(ctx, body, complete: complete)
            default:
                break loop
            }
        }
        // The request body: serve frames the body that came with the head before it contacts the
        // upstream, and the route's request-body stages judge it then.
        let body = given
        if case .proxy = step, let route = ctx.route, let refusal = requestBodyPhase(ctx, route, body) {
            step = .respond(refusal)
        }
        switch step {
        case .respond(let r):
            let h = RequestFlow.responseHead(for: r, ctx, serverName: snapshot.settings.serverName)
            result.local = .init(status: h.status, headers: Self.localHeaders(h, snapshot.settings),
                                 body: ctx.head.method == .head ? "" : r.body)
            result.responseHeaders = result.local!.headers
        case .proxy(let pool):
            // A fresh balancer: with --random, seeded from the draw (reproducible); otherwise the
            // pick is only an example of what serve's per-loop balancer state might give.
            let registry = BalancerRegistry(seed: request.random ?? 1)
            guard let decision = UpstreamStage.decide(pool, registry.entry(pool)) else {
                let h = RequestFlow.responseHead(for: RequestFlow.errorResponse(ctx, 503, "no_upstream_endpoint"), ctx,
                                                 serverName: snapshot.settings.serverName)
                result.local = .init(status: 503, headers: Self.localHeaders(h, snapshot.settings), body: "")
                break
            }
            let choice = decision.choice
            let ep = decision.endpoint
            ctx.endpoint = ep.address
            ctx.record("upstream", looked: "pool \(pool.id): \(pool.endpoints.map(\.address).joined(separator: ", "))",
                       decided: "endpoint \(ep.address)", why: choice.why)
            if let route = ctx.route { bodyNotGiven(ctx, route, body) }
            if pool.endpoints.count > 1 {
                let drawn = pool.balancer == .random || pool.balancer == .leastRequest
                if request.random == nil || !drawn {
                    result.notes.append("the endpoint is illustrative: serve's \(pool.balancer.rawValue) balancer keeps its state per event loop "
                        + (drawn ? "and draws at random (--random fixes the draw here)" : "(its position depends on the requests before this one); dry-run shows a fresh balancer's first pick"))
                }
            }
            // A WebSocket handshake: the route's `websocket` decides, as in serve.
            let upgrade = ctx.head.upgradeWebSocket && RequestFlow.forwardsUpgrade(ctx)
            RequestFlow.prepareUpstreamHead(ctx, serverName: snapshot.settings.serverName)
            let framing = RequestFlow.upstreamRequestFraming(ctx.head.framing)
            var out = ByteBuffer()
            HTTP1Writer.writeRequestHead(ctx.head, framing: framing, upgrade: upgrade, into: &out)
            let wireText = out.readString(length: out.readableBytes) ?? ""
            var lines = wireText.split(separator: "\r\n", omittingEmptySubsequences: true).map(String.init)
            let requestLine = lines.isEmpty ? "" : lines.removeFirst()
            let hdrs: [[String]] = lines.compactMap { l in
                guard let c = l.firstIndex(of: ":") else { return nil }
                return [String(l[..<c]), String(l[l.index(after: c)...]).trimmingCharacters(in: " ")]
            }
            result.upstream = .init(pool: pool.id, balancer: pool.balancer.rawValue, endpoint: ep.address, why: choice.why,
                                    tls: pool.tls.map { Self.upstreamTLSText($0.summary, ep) },
                                    method: ctx.head.method.description, target: ctx.head.effectiveTarget,
                                    path: ctx.head.effectivePath, headers: hdrs, wire: requestLine + "\n" + lines.joined(separator: "\n"))
            // What the response side of the chain would add to the upstream's answer.
            var resp = ResponseHead(status: 200)
            if let route = ctx.route { route.chain.runResponse(ctx, &resp, ranCount: ctx.stagesRun) }
            result.responseHeaders = resp.fields.effective.map { [$0.name, $0.value] }
            // serve's own `Via` line, after the chain's (`server.response_via`).
            if snapshot.settings.responseVia {
                result.responseHeaders.append(["Via", snapshot.settings.via11])
            }
        case .suspend, .readBody:
            result.local = .init(status: 500, headers: [], body: "a stage did not finish")
        }
        result.trace = ctx.trace?.entries ?? []
        return result
    }

    /// The body given after the head, framed by serve's parser: its pieces, whether the request
    /// ended, and a framing error.
    struct GivenBody {
        var pieces: [ByteBuffer] = []
        var bytes: Int64 = 0
        var ended = false
        var error: HTTP1ParseError?
    }

    static func frameBody(_ parser: inout HTTP1RequestParser, _ wire: inout ByteBuffer) -> GivenBody {
        var body = GivenBody()
        while let ev = parser.next(&wire) {
            switch ev {
            case .body(let piece):
                body.pieces.append(piece)
                body.bytes += Int64(piece.readableBytes)
            case .end:
                body.ended = true
                return body
            case .error(let e):
                body.error = e
                return body
            case .head:
                return body
            }
        }
        return body
    }

    /// The stages that ran whose request-body phase runs, by kind.
    static func bodyStageKinds(_ ctx: RequestContext, _ route: Route) -> [String] {
        route.chain.requestBodyStages.filter { $0 < ctx.stagesRun }.map { route.chain.stages[$0].kind }
    }

    static func describeBody(_ framing: BodyFraming) -> String {
        if case .contentLength(let n) = framing { return "a body of \(n) bytes (Content-Length)" }
        return "a chunked body"
    }

    /// Runs the route's request-body phase over the body given, as serve does over the body that
    /// came with the head (before the upstream is contacted): the answer when a stage refuses it
    /// or it does not parse.
    static func requestBodyPhase(_ ctx: RequestContext, _ route: Route, _ body: GivenBody) -> LocalResponse? {
        if case .none = ctx.head.framing { return nil }
        if body.pieces.isEmpty && !body.ended && body.error == nil { return nil }  // none given
        let what = describeBody(ctx.head.framing)
        for piece in body.pieces {
            if case .respond(let r) = route.chain.runRequestBody(ctx, piece, ranCount: ctx.stagesRun) {
                ctx.record("request body", looked: "\(what): \(ctx.requestBodyBytes) of the \(body.bytes) bytes given",
                           decided: "refuse \(r.status)\(r.category.isEmpty ? "" : " " + r.category)",
                           why: "a stage's request-body phase refused it; body that comes with the head is judged before the upstream is contacted, so serve answers without contacting it and closes the connection (the rest of the body is unread)")
                return r
            }
        }
        if let e = body.error {
            ctx.record("parser", looked: "the request body as given", decided: "refuse \(e.status) \(e.category)",
                       why: e.detail + "; body that comes with the head is framed before the upstream is contacted, so serve answers without contacting it and closes the connection")
            return RequestFlow.errorResponse(ctx, e.status, e.category, detail: e.detail)
        }
        let kinds = bodyStageKinds(ctx, route)
        if !kinds.isEmpty {
            ctx.record("request body", looked: "\(what): \(body.bytes) bytes given" + (body.ended ? "" : ", not all of it"),
                       decided: body.ended ? "pass" : "pass so far",
                       why: "each piece passed the request-body phase of \(kinds.joined(separator: ", "))"
                           + (body.ended ? "" : "; serve forwards it and judges the rest as it arrives"))
        }
        return nil
    }

    /// With a body declared but not given, says that the request-body phase runs as it streams:
    /// dry-run cannot judge a body it does not have.
    static func bodyNotGiven(_ ctx: RequestContext, _ route: Route, _ body: GivenBody) {
        if case .none = ctx.head.framing { return }
        guard body.pieces.isEmpty && !body.ended && body.error == nil else { return }
        let kinds = bodyStageKinds(ctx, route)
        guard !kinds.isEmpty else { return }
        ctx.record("request body", looked: "\(describeBody(ctx.head.framing)), not given",
                   decided: "enforced while streaming: not judged here",
                   why: "serve runs the request-body phase of \(kinds.joined(separator: ", ")) on each piece as it arrives; a refusal (body_limit: 413 past max_bytes) closes the connection, before the upstream is contacted if the body came with the head, otherwise after it saw part of the body (and once its response has started, the exchange is cut); --raw FILE with the body runs the phase here")
    }

    /// The human-readable report `prox dry-run` prints.
    /// How a pool's TLS secures the connection to `ep`: versions, SNI, what verifies the
    /// upstream's certificate, the client certificate.
    static func upstreamTLSText(_ t: UpstreamTLSSummary, _ ep: EndpointSpec) -> String {
        var s = "\(t.minVersion)+: SNI " + (ep.tlsServerName.map { "'\($0)'" } ?? "none")
        if t.verify {
            s += ", certificate verified against " + (t.ca ?? "the system trust store")
            s += ep.tlsServerName.map { " for the name '\($0)'" } ?? " for the IP address \(ep.host)"
        } else {
            s += ", certificate NOT verified (insecure_skip_verify)"
        }
        if let c = t.clientCertificate { s += ", client certificate \(c)" }
        return s
    }

    /// The certificate a TLS listener presents for `sni` (the same `SNITable` lookup serve's
    /// handshake makes); nil on a cleartext listener, where `--sni` is an error.
    static func tlsSelection(_ sni: String?, _ listener: ListenerSpec, _ snapshot: Snapshot) throws -> DryRunResult.TLS? {
        guard let tls = listener.tls else {
            if sni != nil {
                let withTLS = snapshot.listeners.filter { $0.tls != nil }.map(\.id)
                throw DryRunError.badRequest("listener '\(listener.id)' has no `tls`: --sni applies to a TLS listener"
                    + (withTLS.isEmpty ? " (this config has none)" : "; give --listener \(withTLS.joined(separator: " or "))"))
            }
            return nil
        }
        let sel = tls.select(serverName: sni)
        let c = tls.certificates[sel.index]
        let by: String
        switch sel.reason {
        case .exact(let n): by = "exact \(n)"
        case .wildcard(let n): by = "wildcard \(n)"
        case .fallback: by = "default"
        }
        return .init(sni: sni, certificate: c.certFile, key: c.keyFile, names: c.names, isDefault: c.isDefault, selectedBy: by,
                     minVersion: tls.minVersion, alpn: tls.applicationProtocols,
                     clientAuth: tls.clientAuth.map { "\($0.required ? "required" : "optional"), verified against \($0.ca)" })
    }

    /// The L4 route a ClientHello naming `sni` gets (`L4Table.select`, serve's lookup), and for
    /// `pass` the endpoint the pool's balancer would pick.
    static func l4Decision(_ table: L4Table, _ sni: String?, _ snapshot: Snapshot, random: UInt64?) -> DryRunResult.L4 {
        guard let i = table.select(sni) else {
            return .init(sni: sni, route: nil, origin: nil, action: "terminate", pool: nil, endpoint: nil,
                         why: "none of the \(table.routes.count) l4 routes takes \(sni.map { "'\($0)'" } ?? "a ClientHello without SNI"): TLS is terminated here and HTTP routed")
        }
        let route = table.routes[i]
        let why = "first l4 route in order whose names match: \(route.matchReason(sni))"
        switch route.action {
        case .drop:
            return .init(sni: sni, route: route.id, origin: route.origin, action: "drop", pool: nil, endpoint: nil, why: why)
        case .pass(let p):
            let pool = snapshot.pools[p]
            let endpoint = UpstreamStage.decide(pool, BalancerRegistry(seed: random ?? 1).entry(pool)).map { $0.endpoint.address }
            return .init(sni: sni, route: route.id, origin: route.origin, action: "pass", pool: pool.id, endpoint: endpoint, why: why)
        }
    }

    public static func text(_ r: DryRunResult) -> String {
        var o = "request: \(r.request)\n  client \(r.client), listener \(r.listener)\n"
        if let l = r.l4 {
            let sni = l.sni.map { "'\($0)'" } ?? "none"
            switch l.action {
            case "pass":
                o += "  l4 SNI \(sni) -> route \(l.route ?? "") [\(l.origin ?? "")]: pass to pool \(l.pool ?? "") (endpoint \(l.endpoint ?? "none")), \(l.why)\n"
                o += "     the raw TCP stream is relayed, ClientHello included: TLS is not terminated here, the upstream's certificate answers\n"
            case "drop":
                o += "  l4 SNI \(sni) -> route \(l.route ?? "") [\(l.origin ?? "")]: drop (the connection is closed), \(l.why)\n"
            default:
                o += "  l4 SNI \(sni) -> terminate: \(l.why)\n"
            }
        }
        if let t = r.tls {
            let names = t.names.isEmpty ? "no names" : t.names.joined(separator: ", ")
            let why: String
            switch t.selectedBy {
            case "default": why = t.sni == nil ? "no SNI: the default certificate" : "no certificate has this name: the default certificate"
            default: why = "by " + t.selectedBy.replacingOccurrences(of: "exact ", with: "exact name ")
            }
            o += "  tls \(t.minVersion)+, alpn \(t.alpn.joined(separator: ",")): SNI \(t.sni.map { "'\($0)'" } ?? "none") -> \(t.certificate) (\(names)), \(why)\n"
            if let a = t.clientAuth { o += "  client certificate \(a) (dry-run presents none)\n" }
        }
        if let l = r.l4, l.action != "terminate" {
            // Passed or dropped before TLS: no HTTP request, no routes.
            o += "\nno HTTP routing: the connection is decided by its ClientHello alone\n"
            return o
        }
        o += "\nroutes considered:\n"
        let malformed = r.trace.first?.stage == "parser"
        if malformed {
            o += "  (none: serve answers a malformed request before routing)\n"
        } else if r.considered.isEmpty {
            o += "  (none: the config has no routes)\n"
        }
        for (i, c) in r.considered.enumerated() {
            if let m = c.mismatch {
                o += "  \(i + 1). \(c.route)  no: \(m)  [\(c.origin)]\n"
            } else {
                o += "  \(i + 1). \(c.route)  MATCH  [\(c.origin)]\n"
            }
        }
        if r.route == nil && !malformed { o += "  => no route matches: serve answers 404 no_route\n" }
        o += "\nstages:\n"
        for (i, t) in r.trace.enumerated() {
            o += "  \(i + 1). \(t.stage)\n     looked at: \(t.looked)\n     decided:   \(t.decided)\n     because:   \(t.why)\n"
        }
        if let u = r.upstream {
            o += "\nupstream request (not sent):\n  pool \(u.pool) (\(u.balancer)) -> \(u.endpoint): \(u.why)\n"
            if let t = u.tls { o += "  tls \(t)\n" }
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
        if !r.notes.isEmpty {
            o += "\nnotes:\n"
            for n in r.notes { o += "  - \(n)\n" }
        }
        return o
    }

    /// A local answer's headers as serve writes them: the route's and the chain's, then `Date`
    /// and `Server` unless one of those gave its own (RFC 9110 §6.6.1, §10.2.4). The date is the
    /// moment serve writes the answer, so dry-run shows a placeholder for it.
    static func localHeaders(_ h: ResponseHead, _ settings: ServerSettings) -> [[String]] {
        var out = h.fields.effective.map { [$0.name, $0.value] }
        if !h.fields.contains(.date) { out.append(["Date", "(time of sending)"]) }
        if !h.fields.contains(.server) { out.append(["Server", settings.serverName]) }
        return out
    }

    /// `--random`'s value: a decimal in [0, 1) or an integer taken as the 64-bit draw.
    public static func parseRandom(_ text: String) -> UInt64? { TrafficSplit.parseDraw(text) }

    /// The bytes a client would send for `request` (the head only), written into `out`. Nothing
    /// is invented: Host comes from the URL's authority or from a header given; a path without
    /// either has none (serve answers an HTTP/1.1 request without Host with 400). Written as
    /// bytes, not built as a String: `prox diff` builds tens of thousands of these.
    static func requestBytes(_ request: DryRunRequest, into out: inout ByteBuffer) throws {
        func clean(_ s: String, _ what: String) throws {
            if s.utf8.contains(where: { $0 == 13 || $0 == 10 }) {
                throw DryRunError.badRequest("\(what) contains a line break; give arbitrary bytes with --raw")
            }
        }
        try clean(request.method, "the method")
        try clean(request.url, "the URL")
        var target = Substring(request.url)
        var slash = false  // the origin-form target starts with "/" only after it
        var host: Substring? = nil
        if let (authority, rest) = splitURL(request.url) {
            if !request.absoluteForm {
                target = rest
                slash = target.isEmpty || target.utf8.first == UInt8(ascii: "?")
            }
            // As a browser (origin-form) or curl through a proxy (absolute-form) would send it.
            if !request.headers.contains(where: { isHost($0.0) }) { host = authority }
        } else if request.absoluteForm {
            throw DryRunError.badRequest("--absolute-form needs an absolute URL (http://host/path)")
        }
        for (n, v) in request.headers {
            try clean(n, "a header")
            try clean(v, "a header")
        }
        out.writeString(request.method)
        out.writeStaticString(" ")
        if slash { out.writeStaticString("/") }
        out.writeSubstring(target)
        out.writeStaticString(" HTTP/1.")
        out.writeString(String(request.versionMinor))
        out.writeStaticString("\r\n")
        if let host {
            out.writeStaticString("Host: ")
            out.writeSubstring(host)
            out.writeStaticString("\r\n")
        }
        for (n, v) in request.headers {
            out.writeString(n)
            out.writeStaticString(": ")
            out.writeString(v)
            out.writeStaticString("\r\n")
        }
        if !request.cookies.isEmpty {
            out.writeStaticString("Cookie: ")
            for (i, (n, v)) in request.cookies.enumerated() {
                if i > 0 { out.writeStaticString("; ") }
                out.writeString(n)
                out.writeStaticString("=")
                out.writeString(v)
            }
            out.writeStaticString("\r\n")
        }
        if let n = request.bodyBytes {
            out.writeStaticString("Content-Length: ")
            out.writeString(String(n))
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
    }

    /// `scheme://authority/rest?query`: the authority and the rest (from the first `/` or `?`
    /// after it); nil without `://`. Compared as characters (a `/` followed by a combining mark
    /// is not a `/`); in an ASCII URL every byte is one, so its bytes are searched directly.
    static func splitURL(_ url: String) -> (authority: Substring, rest: Substring)? {
        var text = url
        // Byte offsets of the authority's start and end; (-1, 0) without "://"; nil: not ASCII.
        let found: (Int, Int)? = text.withUTF8 { u in
            let n = u.count
            var i = 0, start = -1
            while i < n {
                let b = u[i]
                if b >= 0x80 || b == 13 { return nil }
                if start < 0 && b == UInt8(ascii: ":") && i + 2 < n && u[i + 1] == UInt8(ascii: "/") && u[i + 2] == UInt8(ascii: "/") {
                    start = i + 3
                    i = start
                    while i < n && u[i] != UInt8(ascii: "/") && u[i] != UInt8(ascii: "?") {
                        if u[i] >= 0x80 || u[i] == 13 { return nil }
                        i += 1
                    }
                    let end = i
                    while i < n {
                        if u[i] >= 0x80 || u[i] == 13 { return nil }
                        i += 1
                    }
                    return (start, end)
                }
                i += 1
            }
            return (-1, 0)
        }
        if let (start, end) = found {
            guard start >= 0 else { return nil }
            let u = url.utf8
            let a = u.index(u.startIndex, offsetBy: start), e = u.index(u.startIndex, offsetBy: end)
            return (url[a..<e], url[e...])
        }
        guard let r = url.firstRange(of: "://") else { return nil }
        let rest = url[r.upperBound...]
        let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        return (rest[..<slash], rest[slash...])
    }

    /// `name` is `Host`, in any case.
    static func isHost(_ name: String) -> Bool {
        let u = name.utf8
        guard u.contains(where: { $0 >= 0x80 }) else {
            return u.count == 4 && u.elementsEqual("host".utf8) { $0 | 0x20 == $1 }
        }
        return name.lowercased() == "host"
    }
}

