import ProxRegex

/// A listener as compiled: where to accept and the limits to enforce.
public final class ListenerSpec: Sendable {
    // A class: each request context holds one; a reference is one retain where the
    // struct's strings and array were several.
    public let id: String
    public let index: Int
    public let host: String
    public let port: Int
    public let maxHeaderBytes: Int
    public let maxHeaders: Int
    public let maxConnections: Int
    /// Longest request target accepted (414 beyond).
    public let maxURIBytes: Int
    public let clientHeaderTimeout: TimeAmountMillis
    public let clientBodyIdleTimeout: TimeAmountMillis
    public let keepAliveIdleTimeout: TimeAmountMillis
    /// Incoming X-Forwarded-* are kept (and appended to) only from peers in these blocks;
    /// from anyone else they are replaced.
    public let trustedProxies: [CIDR]
    /// Request header lines whose name contains `_` are kept; by default the framer drops them.
    public let allowUnderscoresInHeaders: Bool
    /// Set for a TLS listener (it serves HTTPS only): its certificates, loaded when the config
    /// was compiled. A reload with new certificates serves them to new connections.
    public let tls: (any ListenerTLS)?
    /// `https` with TLS, else `http`: `{scheme}` and `X-Forwarded-Proto`.
    public let scheme: String
    /// A TLS listener's `l4_routes`: each connection's ClientHello is peeked at (not terminated)
    /// and its SNI may pass the raw stream to a pool or drop it. nil: no peek, today's pipeline.
    public let l4: L4Table?

    public init(id: String, index: Int, host: String, port: Int, maxHeaderBytes: Int = 32 * 1024, maxHeaders: Int = 100,
                maxConnections: Int = 10_000, maxURIBytes: Int = 8 * 1024, clientHeaderTimeout: TimeAmountMillis = 10_000,
                clientBodyIdleTimeout: TimeAmountMillis = 30_000, keepAliveIdleTimeout: TimeAmountMillis = 60_000,
                trustedProxies: [CIDR] = [], allowUnderscoresInHeaders: Bool = false, tls: (any ListenerTLS)? = nil,
                l4: L4Table? = nil) {
        self.id = id
        self.index = index
        self.host = host
        self.port = port
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaders = maxHeaders
        self.maxConnections = maxConnections
        self.maxURIBytes = maxURIBytes
        self.clientHeaderTimeout = clientHeaderTimeout
        self.clientBodyIdleTimeout = clientBodyIdleTimeout
        self.keepAliveIdleTimeout = keepAliveIdleTimeout
        self.trustedProxies = trustedProxies
        self.allowUnderscoresInHeaders = allowUnderscoresInHeaders
        self.tls = tls
        self.scheme = tls == nil ? "http" : "https"
        self.l4 = l4
    }
}

/// Milliseconds; config durations compile to this.
public typealias TimeAmountMillis = Int64

public enum BalancerKind: String, Sendable, CaseIterable {
    case roundRobin = "round_robin"
    case weightedRoundRobin = "weighted_round_robin"
    case random = "random"
    case leastRequest = "least_request"
}

public struct EndpointSpec: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var weight: Int
    /// `host:port` (`[v6]:port`), made once: what logs and dry-run name the endpoint by.
    public let address: String
    /// With upstream TLS: the name sent as SNI and checked against the certificate (the pool's
    /// `sni`, else the host when it is a name; nil for an IP address).
    public let tlsServerName: String?
    /// The key of the endpoint's idle connections on each loop: the address for cleartext; with
    /// TLS, also the TLS settings' key and the server name, so a cleartext connection, or one made
    /// with other TLS settings, is never handed to a request that needs these.
    public let connectionKey: String

    /// `tls`: the pool's TLS settings key and this endpoint's server name; nil: cleartext.
    public init(host: String, port: Int, weight: Int = 1, tls: (key: String, serverName: String?)? = nil) {
        self.host = host
        self.port = port
        self.weight = weight
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        self.address = address
        self.tlsServerName = tls?.serverName
        self.connectionKey = tls.map { "tls(\($0.key),\($0.serverName ?? "-"))@" + address } ?? address
    }
}

/// An upstream pool as compiled. Its runtime state (connections, balancer position, in-flight
/// counts) lives in per-event-loop registries keyed by `id`, so it outlives a reload.
public final class PoolSpec: Sendable {
    // A class: requests pass it along; a reference is one retain where the struct's
    // arrays and strings were several.
    public let id: String
    public let index: Int
    public let endpoints: [EndpointSpec]
    public let balancer: BalancerKind
    public let connectTimeout: TimeAmountMillis
    public let responseHeaderTimeout: TimeAmountMillis
    public let bodyIdleTimeout: TimeAmountMillis
    public let maxConnectionsPerEndpoint: Int
    public let idleTimeout: TimeAmountMillis
    public let maxIdlePerEndpoint: Int
    /// Set when the pool speaks TLS to its endpoints: the client context, made when the config
    /// compiled. nil: cleartext.
    public let tls: (any UpstreamTLS)?

    public init(id: String, index: Int, endpoints: [EndpointSpec], balancer: BalancerKind = .roundRobin,
                connectTimeout: TimeAmountMillis = 5_000, responseHeaderTimeout: TimeAmountMillis = 30_000,
                bodyIdleTimeout: TimeAmountMillis = 60_000, maxConnectionsPerEndpoint: Int = 1024,
                idleTimeout: TimeAmountMillis = 60_000, maxIdlePerEndpoint: Int = 256, tls: (any UpstreamTLS)? = nil) {
        self.id = id
        self.index = index
        self.endpoints = endpoints
        self.balancer = balancer
        self.connectTimeout = connectTimeout
        self.responseHeaderTimeout = responseHeaderTimeout
        self.bodyIdleTimeout = bodyIdleTimeout
        self.maxConnectionsPerEndpoint = maxConnectionsPerEndpoint
        self.idleTimeout = idleTimeout
        self.maxIdlePerEndpoint = maxIdlePerEndpoint
        self.tls = tls
    }
}

/// What a route does once its chain has passed.
public enum RouteAction: Sendable {
    case proxy(pool: Int)
    case respond(status: Int, headers: [(name: HeaderName, value: Template)], body: Template)
    case redirect(status: Int, location: Template)
}

/// What a route does with a WebSocket handshake (`Upgrade: websocket`), decided when the config
/// compiles.
public struct WebSocketPolicy: Sendable, Equatable {
    /// Forward the upgrade (`Connection: upgrade`, `Upgrade: websocket`): a `101` answer joins the
    /// two connections in a byte tunnel. Off: the upgrade is not forwarded and the upstream
    /// answers a plain GET (nginx without `proxy_set_header Upgrade`).
    public var enabled: Bool
    /// A tunnel with no byte either way for this long is closed (both connections).
    public var idleTimeout: TimeAmountMillis

    /// nginx's `proxy_read_timeout`: a WebSocket application that pings (most do, every 20-30 s)
    /// keeps its tunnel; one silent for a minute is taken for gone.
    public static let defaultIdleTimeout: TimeAmountMillis = 60_000
    public static let `default` = WebSocketPolicy(enabled: true, idleTimeout: defaultIdleTimeout)

    public init(enabled: Bool, idleTimeout: TimeAmountMillis) {
        self.enabled = enabled
        self.idleTimeout = idleTimeout
    }
}

/// What a route requires of the connection a request came on: TLS, a verified client
/// certificate. Checked right after routing, before the chain runs; a route without
/// requirements has none (`Route.transport` nil: one nil check per request).
public final class RouteTransport: Sendable {
    /// `require_tls`: what a request that came over cleartext gets.
    public enum TLSRequirement: Sendable, Equatable {
        /// 308 to `https://host[:port]target`; nil port: the default (443).
        case redirect(port: Int?)
        /// 403 `tls_required`.
        case reject
    }
    public let tls: TLSRequirement?
    /// `require_client_cert`: a request without a verified client certificate gets 403
    /// `client_certificate_required`.
    public let clientCertificate: Bool

    public init(tls: TLSRequirement?, clientCertificate: Bool) {
        self.tls = tls
        self.clientCertificate = clientCertificate
    }
}

/// A route as compiled. Its slots, in the order a request meets them: the middleware `chain`,
/// the optional `cache`, the optional traffic `split`, then the `action` (the upstream pool, or
/// a local answer). An empty slot is nil: a route without a cache or a split pays one nil check
/// for each.
public final class Route: Sendable {
    public let id: String
    public let index: Int
    public let match: RouteMatchSpec
    public let chain: RouteChain
    /// Looked up after the chain passed, for proxied routes only; nil: no cache (pass-through).
    public let cache: (any CacheStage)?
    /// `cache != nil`, decided once: testing the optional existential itself on the hot path
    /// copied it through the runtime's generic witnesses (about 150 instructions a request for
    /// a route without a cache).
    public let hasCache: Bool
    /// Picks the pool per request, for proxied routes; nil: the action's pool.
    public let split: SplitTable?
    /// With a split, `.proxy(pool:)` holds the split's first pool: the split decides.
    public let action: RouteAction
    /// Set when a template or rewrite uses the path regex's captures.
    public let needsPathCaptures: Bool
    public let needsHostCaptures: Bool
    /// Where the route was declared (`file:line:col`), for logs and dry-run.
    public let origin: String
    /// WebSocket handshakes: forwarded (a `101` makes a tunnel) or not. Read only for a request
    /// that is one (`RequestHead.upgradeWebSocket`).
    public let webSocket: WebSocketPolicy
    /// `require_tls`, `require_client_cert`; nil: the route requires nothing of the connection.
    public let transport: RouteTransport?

    public init(id: String, index: Int, match: RouteMatchSpec, chain: RouteChain, cache: (any CacheStage)? = nil,
                split: SplitTable? = nil, action: RouteAction, needsPathCaptures: Bool, needsHostCaptures: Bool, origin: String,
                webSocket: WebSocketPolicy = .default, transport: RouteTransport? = nil) {
        self.id = id
        self.index = index
        self.match = match
        self.chain = chain
        self.cache = cache
        self.hasCache = cache != nil
        self.split = split
        self.action = action
        self.needsPathCaptures = needsPathCaptures
        self.needsHostCaptures = needsHostCaptures
        self.origin = origin
        self.webSocket = webSocket
        self.transport = transport
    }

    /// The chain's response phase (`RouteChain.runResponse`). Called on the route, which the
    /// caller holds, so the chain is read in place: reached as `route.chain` from the engine,
    /// the chain was retained and released around the call.
    @inline(never)
    public func runResponse(_ ctx: RequestContext, _ head: inout ResponseHead, ranCount: Int) {
        chain.runResponse(ctx, &head, ranCount: ranCount)
    }

    /// Fills the context's captures from the route's regexes, when templates need them.
    public func captureInto(_ ctx: RequestContext) {
        if needsPathCaptures, case .regex(let r)? = match.path {
            ctx.pathCaptures = r.captures(ctx.head.path) ?? []
        }
        if needsHostCaptures {
            for h in match.hosts {
                if case .regex(let r) = h, let c = r.captures(ctx.head.host) { ctx.hostCaptures = c; break }
            }
        }
    }
}

/// Which engine carries the cleartext HTTP/1 listeners (`server.engine`).
public enum ServerEngine: String, Sendable, CaseIterable {
    /// io_uring where the probe at start passes and the engine serves the config; else SwiftNIO.
    case auto
    /// The io_uring engine, or a refusal to start naming why not.
    case uring
    /// SwiftNIO for every listener.
    case nio
}

/// Access-log and proxy-wide settings.
public struct ServerSettings: Sendable {
    /// "stdout", "off", or a file path.
    public var accessLog: String
    /// Value of `Via` (`1.1 <name>`) and `Server` on local answers.
    public var serverName: String
    public var drainTimeout: TimeAmountMillis
    /// `Via` values, made once: `1.1 <name>` and `1.0 <name>`.
    public let via11: String
    public let via10: String
    /// The `Via` line every request sent upstream gets, made once (`Via: 1.1 <name>`, or 1.0 for
    /// an HTTP/1.0 request).
    public let requestViaLine11: HeaderLines
    public let requestViaLine10: HeaderLines
    /// `server.trace`: the header that asks for a live trace and the token it must carry; nil
    /// when live traces are off (the request path then pays one nil check).
    public let liveTrace: LiveTraceSettings?
    /// The length of the trace header's name (0: no `server.trace`): a request whose head has no
    /// line of that length is passed over with a walk of the line lengths, nothing retained.
    public let liveTraceNameLength: UInt32
    /// Whether proxied responses get a `Via` line (`server.response_via`).
    public let responseVia: Bool
    /// The lines written as bytes, made once: `Via: 1.1 <name>` for a proxied response (from an
    /// HTTP/1.1 or 1.0 upstream; empty when `responseVia` is off), `Server: <name>` for Prox's
    /// own answers.
    public let viaLine11: [UInt8]
    public let viaLine10: [UInt8]
    public let serverLine: [UInt8]
    /// `server.engine`: read once, when the server starts (a reload does not move listeners).
    public var engine: ServerEngine

    public init(accessLog: String = "stdout", serverName: String = "prox", drainTimeout: TimeAmountMillis = 30_000,
                responseVia: Bool = true, liveTrace: LiveTraceSettings? = nil, engine: ServerEngine = .nio) {
        self.engine = engine
        self.accessLog = accessLog
        self.serverName = serverName
        self.drainTimeout = drainTimeout
        self.liveTrace = liveTrace
        self.liveTraceNameLength = UInt32(truncatingIfNeeded: liveTrace?.header.lowercased.count ?? 0)
        self.via11 = "1.1 " + serverName
        self.via10 = "1.0 " + serverName
        self.requestViaLine11 = HeaderLines([(.via, via11)])
        self.requestViaLine10 = HeaderLines([(.via, via10)])
        self.responseVia = responseVia
        self.viaLine11 = responseVia ? Array("Via: 1.1 \(serverName)\r\n".utf8) : []
        self.viaLine10 = responseVia ? Array("Via: 1.0 \(serverName)\r\n".utf8) : []
        self.serverLine = Array("Server: \(serverName)\r\n".utf8)
    }
}

/// Live chain traces: a request whose `header` carries `token` gets its real trace in the access
/// log, and `X-Prox-Trace-Id` on its response.
public struct LiveTraceSettings: Sendable {
    public let header: HeaderName
    public let token: [UInt8]

    public init(header: HeaderName, token: [UInt8]) {
        self.header = header
        self.token = token
    }

    /// Compares in time that depends on the lengths only, never on where the bytes differ.
    public func accepts(_ value: String) -> Bool {
        var diff: UInt8 = value.utf8.count == token.count ? 0 : 1
        var i = 0
        for b in value.utf8 {
            diff |= b ^ token[i % max(token.count, 1)]
            i += 1
        }
        return diff == 0 && !token.isEmpty
    }
}

/// One compiled config: immutable, shared by every event loop. A request reads the current
/// snapshot once, when its head arrives, and uses it to its end.
public final class Snapshot: Sendable {
    public let version: Int
    public let source: String
    public let listeners: [ListenerSpec]
    public let routes: [Route]
    public let pools: [PoolSpec]
    public let router: Router
    public let settings: ServerSettings

    public init(version: Int, source: String, listeners: [ListenerSpec], routes: [Route], pools: [PoolSpec],
                router: Router, settings: ServerSettings) {
        self.version = version
        self.source = source
        self.listeners = listeners
        self.routes = routes
        self.pools = pools
        self.router = router
        self.settings = settings
    }
}
