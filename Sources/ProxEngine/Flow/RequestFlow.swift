import NIOCore
import ProxCore
import ProxUpstream

/// What happens to a request after routing and its chain: the decisions `serve`, `dry-run` and
/// `check` share. No I/O here: the connection handler carries out the step, dry-run records it.
public enum FlowStep {
    /// Answer the client with this response (the chain or the route's action made it).
    case respond(LocalResponse)
    /// Send the request to this pool.
    case proxy(PoolSpec)
    /// A stage is waiting; call `RequestFlow.resume` with the verdict the future yields.
    case suspend(EventLoopFuture<Verdict>)
    /// The next stage needs the request body first: read up to this many bytes of it (or all
    /// of it, if shorter), then call `RequestFlow.bodyRead`.
    case readBody(upTo: Int)
}

public enum RequestFlow {
    /// Routes the request and runs its chain from the first stage. Runs on the request's loop.
    public static func begin(_ ctx: RequestContext) -> FlowStep {
        // Live traces configured: one nil check for every request when they are not (`!= nil`:
        // binding the settings here would retain and release them per request).
        if ctx.snapshot.settings.liveTrace != nil { LiveTrace.activate(ctx) }
        let router = ctx.snapshot.router
        let listener = ctx.listener.index
        guard let m = ctx.withHead({ router.match($0, listener: listener) }) else {
            ctx.record("router", looked: "host '\(ctx.head.host)', path '\(ctx.head.path)', method \(ctx.head.method)",
                       decided: "no route", why: "none of the \(ctx.snapshot.routes.count) routes matches")
            return .respond(errorResponse(ctx, 404, "no_route"))
        }
        let route = ctx.snapshot.routes[m.routeIndex]
        ctx.route = route
        route.captureInto(ctx)
        ctx.record("router", looked: "host '\(ctx.head.host)', path '\(ctx.head.path)', method \(ctx.head.method)",
                   decided: "route \(route.id)", why: "first route in order whose match holds (\(route.origin))")
        // What the route requires of the connection, before any stage runs: one nil check for a
        // route that requires nothing.
        // (`!= nil`, not `if let`: binding the reference would retain and release it per request.)
        if route.transport != nil, let refusal = transportRefusal(ctx, route) { return .respond(refusal) }
        return runChain(ctx, from: 0)
    }

    /// `require_tls` and `require_client_cert`: the answer for a request that does not meet
    /// them, or nil. Decided before the chain, so nothing of the request (credentials a stage
    /// would read, a body) is acted on over a connection the route refuses.
    @inline(never)
    static func transportRefusal(_ ctx: RequestContext, _ route: Route) -> LocalResponse? {
        guard let t = route.transport else { return nil }
        if let tls = t.tls {
            if ctx.scheme == "https" {
                ctx.record("require_tls", looked: "scheme https", decided: "go on", why: "the request came over TLS")
            } else {
                switch tls {
                case .redirect(let port):
                    let loc = httpsLocation(ctx, port: port)
                    ctx.record("require_tls", looked: "scheme http", decided: "redirect 308 to \(loc)",
                               why: "route \(route.id) requires TLS (require_tls: redirect)")
                    return LocalResponse(status: 308, headers: [(.location, loc)], body: "")
                case .reject:
                    ctx.record("require_tls", looked: "scheme http", decided: "reject 403 tls_required",
                               why: "route \(route.id) requires TLS (require_tls: reject)")
                    return errorResponse(ctx, 403, "tls_required")
                }
            }
        }
        if t.clientCertificate {
            if let id = ctx.tlsClient {
                ctx.record("require_client_cert", looked: "client certificate \(id.subject)", decided: "go on",
                           why: "the listener verified it against its client_auth CA")
            } else {
                ctx.record("require_client_cert", looked: ctx.scheme == "https" ? "no client certificate" : "a cleartext connection",
                           decided: "reject 403 client_certificate_required", why: "route \(route.id) has require_client_cert")
                return errorResponse(ctx, 403, "client_certificate_required")
            }
        }
        return nil
    }

    /// `https://HOST[:port]TARGET` for a redirect to TLS: the Host without its port, the target
    /// as received (origin form; an absolute-form target keeps its path and query).
    static func httpsLocation(_ ctx: RequestContext, port: Int?) -> String {
        var host = ctx.head.host
        if host.isEmpty { host = ctx.listener.host }
        if host.contains(":") && !host.hasPrefix("[") { host = "[\(host)]" }
        let portPart = port.map { $0 == 443 ? "" : ":\($0)" } ?? ""
        var target = ctx.head.path
        if let q = ctx.head.query { target += "?" + q }
        return "https://" + host + portPart + target
    }

    /// Continues after a suspended stage answered.
    public static func resume(_ ctx: RequestContext, with verdict: Verdict) -> FlowStep {
        switch verdict {
        case .next: return runChain(ctx, from: ctx.stagesRun)
        case .respond(let r): return .respond(r)
        case .suspend(let f): return .suspend(f)
        }
    }

    /// Continues after the body a stage asked for was read: `body` is its start (at most the
    /// amount asked), `complete` whether it is all of it.
    public static func bodyRead(_ ctx: RequestContext, _ body: ByteBuffer, complete: Bool) -> FlowStep {
        ctx.requestBody = body
        // A Content-Length body held whole is complete even before its end was framed.
        ctx.requestBodyComplete = complete || ctx.head.framing == .contentLength(Int64(body.readableBytes))
        if let route = ctx.route, ctx.isTracing {
            let stage = route.chain.bodyBufferAt < route.chain.stages.count ? route.chain.stages[route.chain.bodyBufferAt].kind : "?"
            ctx.record("body (engine)", looked: "the request body, for \(stage)",
                       decided: complete ? "read all of it: \(body.readableBytes) bytes" : "read its first \(body.readableBytes) bytes",
                       why: "\(stage) asks for up to \(route.chain.bodyBufferBytes) bytes before it runs; the whole body still goes upstream")
        }
        return runChain(ctx, from: ctx.stagesRun)
    }

    @inline(__always)
    static func runChain(_ ctx: RequestContext, from start: Int) -> FlowStep {
        guard let route = ctx.route else { return .respond(errorResponse(ctx, 500, "internal_error")) }
        // A stage that needs the body first: one comparison for a chain without one. The common
        // path stays the plain loop (inlining the body case here made every request copy each
        // stage's existential: +550 instructions, measured with callgrind before the chain called
        // its stages through `StageCaller`).
        if route.chain.bodyBufferAt < route.chain.stages.count && ctx.requestBody == nil {
            return runChainUpToBody(ctx, route, from: start)
        }
        let (verdict, ran) = route.chain.runRequest(ctx, from: start)
        ctx.stagesRun = ran
        switch verdict {
        case .respond(let r): return .respond(r)
        case .suspend(let f): return .suspend(f)
        case .next: return action(ctx, route)
        }
    }

    /// Runs the chain up to the first stage that needs the body, then asks for the body (a
    /// request without one goes on at once with an empty one).
    @inline(never)
    static func runChainUpToBody(_ ctx: RequestContext, _ route: Route, from start: Int) -> FlowStep {
        if ctx.head.framing == .none {
            ctx.requestBody = ByteBuffer()
            ctx.requestBodyComplete = true
            return runChain(ctx, from: start)
        }
        let (verdict, ran) = route.chain.runRequest(ctx, from: start, upTo: route.chain.bodyBufferAt)
        ctx.stagesRun = ran
        switch verdict {
        case .respond(let r): return .respond(r)
        case .suspend(let f): return .suspend(f)
        case .next: return .readBody(upTo: route.chain.bodyBufferBytes)
        }
    }

    static func action(_ ctx: RequestContext, _ route: Route) -> FlowStep {
        switch route.action {
        case .proxy(let pool):
            // Cache slot: an empty slot is pass-through (one flag test; see `Route.hasCache`).
            if route.hasCache, let cache = route.cache {
                switch cache.lookup(ctx) {
                case .hit(let r):
                    ctx.record("cache", looked: "route \(route.id)", decided: "hit: answer \(r.status)", why: "\(cache.kind) has it")
                    return .respond(r)
                case .miss:
                    ctx.record("cache", looked: "route \(route.id)", decided: "miss", why: "\(cache.kind) has nothing usable")
                }
            } else {
                ctx.record("cache", looked: "route \(route.id)", decided: "pass-through", why: "no cache configured")
            }
            // Split slot: one draw picks the pool; otherwise the action's pool.
            var index = pool
            if let split = route.split {
                let draw = ctx.randomOverride ?? ThreadRandom.next()
                let i = TrafficSplit.choose(split, draw: draw)
                index = split.bands[i].pool
                ctx.record("split", looked: TrafficSplit.describe(split), decided: "pool \(split.names[i])",
                           why: TrafficSplit.explain(split, draw: draw, chosen: i)
                               + (ctx.randomOverride == nil ? "; illustrative: the draw is random, serve draws afresh for every request (--random fixes it)" : " (the draw given)"))
            }
            let p = ctx.snapshot.pools[index]
            ctx.poolID = p.id
            ctx.record("action", looked: "route \(route.id)", decided: "proxy to pool \(p.id)",
                       why: route.split == nil ? "the route's action is proxy" : "the route's action is proxy, to the pool the split chose")
            return .proxy(p)
        case .respond(let status, let headers, let body):
            var r = LocalResponse(status: status, body: body.render(ctx))
            for h in headers { r.headers.append((h.name, h.value.render(ctx))) }
            ctx.record("action", looked: "route \(route.id)", decided: "respond \(status)", why: "the route's action is respond")
            return .respond(r)
        case .redirect(let status, let location):
            let loc = location.render(ctx)
            ctx.record("action", looked: "route \(route.id)", decided: "redirect \(status) to \(loc)",
                       why: "the route's action is redirect")
            return .respond(LocalResponse(status: status, headers: [(.location, loc)], body: ""))
        }
    }

    /// Whether a WebSocket handshake (`ctx.head.upgradeWebSocket`) goes upstream as one: the
    /// route's `websocket` decides. Serve asks once the chain chose to proxy, and only for a
    /// handshake (a request that is not one pays that one check); dry-run asks the same.
    public static func forwardsUpgrade(_ ctx: RequestContext) -> Bool {
        guard let route = ctx.route else { return false }
        let ws = route.webSocket
        ctx.record("upgrade", looked: "Upgrade: websocket, Connection: upgrade (a WebSocket handshake)",
                   decided: ws.enabled ? "forward the upgrade: a 101 from the upstream makes a byte tunnel" : "do not forward the upgrade",
                   why: ws.enabled
                       ? "route \(route.id) lets WebSocket through (tunnel idle timeout \(DurationText.format(ws.idleTimeout)))"
                       : "route \(route.id) has `websocket: false`: Upgrade is not sent, the upstream answers a plain GET")
        return ws.enabled
    }

    /// An error answer carrying the request id (made now if no stage made one).
    public static func errorResponse(_ ctx: RequestContext, _ status: Int, _ category: String, detail: String = "") -> LocalResponse {
        if ctx.requestID.isEmpty { ctx.requestID = RequestID.generate() }
        return LocalResponse.error(status, category, requestID: ctx.requestID, detail: detail)
    }

    /// The response head for a local answer, after the response sides of the stages that ran.
    public static func responseHead(for r: LocalResponse, _ ctx: RequestContext, serverName: String) -> ResponseHead {
        var head = ResponseHead(status: r.status, framing: .contentLength(Int64(r.body.utf8.count)))
        for h in r.headers { head.fields.add(h.name, h.value) }
        if !r.category.isEmpty {
            head.fields.set(proxErrorHeader, r.category)
            head.fields.set(.server, serverName)
        }
        if !ctx.requestID.isEmpty && !head.fields.contains(.xRequestID) { head.fields.set(.xRequestID, ctx.requestID) }
        if let route = ctx.route { route.chain.runResponse(ctx, &head, ranCount: ctx.stagesRun) }
        if ctx.trace?.startNanos != nil { LiveTrace.mark(ctx, &head) }
        return head
    }

    public static let proxErrorHeader = HeaderName("X-Prox-Error")

    /// How the request body is framed towards the upstream, from how the client framed it: a
    /// chunked body stays chunked, a Content-Length is kept, and no body (or, for a request, a
    /// body "until close", which HTTP/1.1 does not allow) sends none. The one place this is
    /// decided: the connection handler's request write and dry-run's upstream head both use it.
    @inlinable
    public static func upstreamRequestFraming(_ client: BodyFraming) -> BodyFraming {
        switch client {
        case .chunked: return .chunked
        case .contentLength(let n): return .contentLength(n)
        case .none, .untilClose: return .none
        }
    }

    /// The forwarding lines a request from this client gets when it brought none: made once and
    /// kept with the connection's exchange by the engine (`prepareUpstreamHead`'s `forwarding`).
    public static func forwardingLines(clientIPText: String, scheme: String) -> HeaderLines {
        HeaderLines { f in
            f.add(HeaderName.Lent.xForwardedFor, clientIPText)
            f.add(HeaderName.Lent.xForwardedProto, scheme)
        }
    }

    /// Prepares the request head for the upstream: forwarding headers, Via, Expect. Runs once per
    /// attempt's head, on the request's loop.
    ///
    /// X-Forwarded-For/-Proto/-Host from the client are kept (and appended to) only when the
    /// peer is in the listener's `trusted_proxies`; otherwise they are replaced, so a client
    /// cannot forge its address to the upstream. `forwarding`: `forwardingLines` for this
    /// request's client and scheme, made beforehand (nil: made here).
    public static func prepareUpstreamHead(_ ctx: RequestContext, serverName: String, forwarding: HeaderLines? = nil) {
        let trusted = !ctx.listener.trustedProxies.isEmpty && ctx.listener.trustedProxies.contains { $0.contains(ctx.client) }
        // Read phase: the head lent in place (reading a struct stored in a class would copy it),
        // one pass over the received lines. The writes below then edit the context's arrays in
        // place.
        let plan: ForwardingSeen = ctx.withHead { h in
            var seen = ForwardingSeen()
            h.fields.forEachReceived { name, _ in
                switch name.count {
                case 3: if HeaderName.via.matches(name) { seen.via = true }
                case 15: if HeaderName.xForwardedFor.matches(name) { seen.xff = true }
                case 16: if HeaderName.xForwardedHost.matches(name) { seen.xfh = true }
                case 17: if HeaderName.xForwardedProto.matches(name) { seen.xfp = true }
                default: break
                }
            }
            // Bit tests (`addedHas` for these names), without reaching the names themselves.
            let added = h.fields.addedKnown
            seen.xff = seen.xff || added & HeaderName.Bit.xForwardedFor != 0
            seen.xfp = seen.xfp || added & HeaderName.Bit.xForwardedProto != 0
            seen.xfh = seen.xfh || added & HeaderName.Bit.xForwardedHost != 0
            seen.via = seen.via || added & HeaderName.Bit.via != 0
            if seen.xff && trusted { seen.priorXFF = h.fields.all(.xForwardedFor).joined(separator: ", ") }
            if seen.via { seen.priorVia = h.fields.all(.via).joined(separator: ", ") }
            if !seen.xfh || !trusted {
                // The Host as received is copied as bytes; one a stage added is rare.
                seen.hostSlot = h.fields.firstSlot(HeaderName.Lent.host)
                if seen.hostSlot == nil { seen.host = h.fields.first(.host) }
            }
            return seen
        }
        if !plan.xff && !plan.xfp {
            // The common case: neither came in. The connection's two lines, made once (the
            // engine's `forwarding`), are one copy.
            ctx.head.fields.add(forwarding ?? forwardingLines(clientIPText: ctx.clientIPText, scheme: ctx.scheme))
        } else {
            if let prior = plan.priorXFF {
                ctx.head.fields.set(.xForwardedFor, prior + ", " + ctx.clientIPText)
            } else if plan.xff {
                ctx.head.fields.set(.xForwardedFor, ctx.clientIPText)
            } else {
                ctx.head.fields.add(HeaderName.Lent.xForwardedFor, ctx.clientIPText)
            }
            if !plan.xfp {
                ctx.head.fields.add(HeaderName.Lent.xForwardedProto, ctx.scheme)
            } else if !trusted {
                ctx.head.fields.set(.xForwardedProto, ctx.scheme)
            }
        }
        if plan.xfh && !trusted { ctx.head.fields.remove(.xForwardedHost) }
        if !plan.xfh || !trusted {
            if let i = plan.hostSlot {
                ctx.head.fields.add(HeaderName.Lent.xForwardedHost, valueOfSlot: i)
            } else if let h = plan.host {
                ctx.head.fields.add(.xForwardedHost, h)
            }
        }
        if let prior = plan.priorVia {
            let via = ctx.head.versionMinor == 0 ? ctx.snapshot.settings.via10 : ctx.snapshot.settings.via11
            ctx.head.fields.set(.via, prior + ", " + via)
        } else {
            ctx.head.fields.add(ctx.head.versionMinor == 0 ? ctx.snapshot.settings.requestViaLine10 : ctx.snapshot.settings.requestViaLine11)
        }
        // Prox answers `100 Continue` itself once the chain has passed.
        if ctx.head.expectContinue { ctx.head.fields.remove(.expect) }
    }

    struct ForwardingSeen {
        var xff = false, xfp = false, xfh = false, via = false
        var priorXFF: String?
        var priorVia: String?
        var hostSlot: Int?
        var host: String?
    }
}
