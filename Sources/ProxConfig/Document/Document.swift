import ProxCore

/// The whole config document. Top-level sections stay stable so later features (TLS, admin,
/// resilience, caching) add sections or keys without breaking existing files.
struct ProxDocument: ConfigObject {
    var schemaURI: String?
    var version = 1
    var server = ServerConfig()
    var listeners: [ListenerConfig] = []
    var pools: [PoolConfig] = []
    var chains: [ConfigMapEntry<[DecodedFilter]>] = []
    var routes: [RouteConfig] = []
    var node: ConfigNode?

    static let schemaName = "Document"
    static let doc = "A Prox config: listeners accept connections, routes (in order, first match wins) pick what happens to each request, pools are the upstreams routes proxy to, and chains are named lists of filters routes share."

    static var chainType: ConfigType<[ConfigMapEntry<[DecodedFilter]>]> {
        ConfigType.filterEntry.list().map(keyDocName: "chain id", keySchema: .object([("pattern", .string("^[A-Za-z0-9][A-Za-z0-9_.-]*$"))]),
                                          key: { key, node, d in
            if !isIdentifier(key) { d.error(node, "'\(key)' is not a valid chain id", hint: "ids use letters, digits, '_', '-' and '.'") }
            return isIdentifier(key)
        })
    }

    static var fields: [ConfigField<Self>] {[
        .field("$schema", \.schemaURI, .string,
               doc: "The JSON Schema of this document, for editors (`../schemas/prox.schema.json`). Ignored by Prox."),
        .field("version", \.version, ConfigType<Int>.int().describing(docName: "`1`", schema: { _ in .object([("const", .int(1))]) })
            .checked { v, node, d in
                if v != 1 { d.error(node, "unsupported version \(v)", hint: "this Prox reads version 1") }
                return v == 1
            }, required: true, doc: "The format version. Always 1 for now."),
        .field("server", \.server, .object(ServerConfig.self), default: "defaults", doc: "Process-wide settings."),
        .field("listeners", \.listeners, ConfigType.object(ListenerConfig.self).list(minItems: 1), required: true,
               doc: "Where Prox accepts connections."),
        .field("pools", \.pools, ConfigType.object(PoolConfig.self).list(), default: "none",
               doc: "Upstream pools that routes proxy to."),
        .field("chains", \.chains, chainType, default: "none",
               doc: "Named chains of filters, which routes refer to by id with `chain: <id>`."),
        .field("routes", \.routes, ConfigType.object(RouteConfig.self).list(), required: true,
               doc: "The routes, in order: the first route whose `match` holds handles the request. A request no route matches gets 404 `no_route`."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) { self.node = node }
}

struct ServerConfig: ConfigObject {
    var name = "prox"
    var accessLog = "stdout"
    var drainTimeout: Int64 = 30_000
    var trustedProxies: [CIDR] = []
    var trace: LiveTraceConfig?
    var responseVia = true
    var engine = ServerEngine.auto

    static let schemaName = "Server"
    static let doc = "Process-wide settings."

    static var fields: [ConfigField<Self>] {[
        .field("name", \.name, ConfigType.string(minLength: 1).checked { s, node, d in
            guard s.utf8.allSatisfy({ isTokenByte($0) || $0 == UInt8(ascii: "/") }) else {
                d.error(node, "'\(s)' cannot be used in a header value as a product name", hint: "use letters, digits, '-', '.', '/'")
                return false
            }
            return true
        }, doc: "Name in `Via: 1.1 <name>` on proxied messages and in `Server:` on Prox's own answers."),
        .field("access_log", \.accessLog, .string(minLength: 1),
               doc: "Where access log lines go: `stdout`, `off`, or a file path (appended to)."),
        .field("drain_timeout", \.drainTimeout, .duration(min: 0),
               doc: "On shutdown, how long requests in flight may take to finish before connections are closed."),
        .field("trusted_proxies", \.trustedProxies, ConfigType.cidr.list(), default: "none",
               doc: "Peers whose `X-Forwarded-*` headers are kept and appended to; from anyone else they are replaced. The default for listeners that set none."),
        .field("response_via", \.responseVia, .bool,
               doc: "Add `Via: 1.1 <name>` to proxied responses, as RFC 9110 §7.6.3 asks of proxies (a gateway may leave it out; nginx does by default). Requests sent upstream always carry `Via`."),
        .field("engine", \.engine, .enumeration(ServerEngine.self),
               doc: "What carries the cleartext HTTP/1 listeners: `auto` (the default: io_uring where the start-up probe passes and the io_uring engine serves the config, else SwiftNIO; one log line at start says which engine runs and why), `uring` (the io_uring engine, or a refusal to start naming the reason) or `nio` (SwiftNIO). The io_uring engine does not carry yet: pools with `tls` and routes with `ext_filter`; a config with either runs on SwiftNIO under `auto` and is refused at start under `uring`, and a reload that brings either to a process serving on io_uring is refused (restart to move to SwiftNIO). TLS listeners, L4 routes, the admin side and everything else stay on SwiftNIO. Read at start: a reload does not move listeners between engines."),
        .field("trace", \.trace, .object(LiveTraceConfig.self), default: "off",
               doc: "Live chain traces: a request carrying the trace header with the secret token gets its real trace (the stages of `prox dry-run --format json`, with timings) in its access-log line."),
    ]}
}

struct LiveTraceConfig: ConfigObject {
    var header: HeaderName = HeaderName("X-Prox-Trace")
    var tokenFile: Positioned<String>?

    static let schemaName = "LiveTrace"
    static let doc = "Who may ask for a live trace of their request, and how."

    static var fields: [ConfigField<Self>] {[
        .field("header", \.header, .headerName, doc: "The request header that asks for a trace. It is always removed from the request: neither stages nor the upstream see it."),
        .field("token_file", \.tokenFile, ConfigType.string(minLength: 1).positioned, required: true,
               doc: "A file holding the secret token the header must carry (surrounding whitespace ignored; at least 16 bytes). Read when the config is loaded, so a reload picks up a new token. A request whose header carries anything else gets no trace, and nothing tells it so."),
    ]}
}

struct ListenerConfig: ConfigObject {
    var id: Positioned<String>?
    var address: HostPort?
    var limits = ListenerLimits()
    var timeouts = ListenerTimeouts()
    var trustedProxies: [CIDR]?
    var allowUnderscoresInHeaders = false
    var tls: ListenerTLSConfig?
    var l4Routes: [L4RouteConfig]?
    var node: ConfigNode?

    static let schemaName = "Listener"
    static let doc = "A socket Prox accepts HTTP/1.1 connections on: cleartext, or with `tls`, HTTPS only."

    static var fields: [ConfigField<Self>] {[
        .field("id", \.id, ConfigType.identifier.positioned, required: true, doc: "Name routes use in `listeners:`; also in logs."),
        .field("address", \.address, .address(allowNames: false, allowEmptyHost: true, allowPortZero: true), required: true,
               doc: "`host:port` to listen on: `127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:80`, or `:8080` for every IPv4 address. Port 0 picks a free port."),
        .field("limits", \.limits, .object(ListenerLimits.self), default: "defaults", doc: "Size and count limits."),
        .field("timeouts", \.timeouts, .object(ListenerTimeouts.self), default: "defaults", doc: "Client-side timeouts."),
        .field("trusted_proxies", \.trustedProxies, ConfigType.cidr.list(), default: "`server.trusted_proxies`",
               doc: "Peers whose `X-Forwarded-*` headers are kept and appended to on this listener."),
        .field("allow_underscores_in_headers", \.allowUnderscoresInHeaders, .bool,
               doc: "Keep request header lines whose name contains `_`. Off: they are dropped before any filter or upstream sees them (a backend that reads `_` as `-` would otherwise see headers such as `Transfer_Encoding` that Prox did not act on), and the access log counts them in `dropped_headers`."),
        .field("tls", \.tls, .object(ListenerTLSConfig.self), default: "cleartext",
               doc: "Terminate TLS: the listener serves HTTPS only, `{scheme}` is `https` and `X-Forwarded-Proto: https` goes upstream. Whether a listener has TLS is fixed when it binds (a reload that adds or removes `tls` takes effect on restart); its certificates reload."),
        .field("l4_routes", \.l4Routes, ConfigType.object(L4RouteConfig.self).list(), default: "none",
               doc: "L4 SNI dispatch on a TLS listener: each connection's ClientHello is read without terminating TLS (within `limits.client_hello_max_bytes` and `timeouts.client_hello`), and the first of these routes, in order, whose names match its SNI decides: `pass` relays the raw TCP stream (ClientHello included) to a pool, so the client's TLS session is with that upstream; `drop` closes. A connection no L4 route takes is terminated and routed by `routes` as on any TLS listener, so L4 and HTTP routes share the port and reload together. A malformed, truncated, oversized or late ClientHello closes the connection. Without `l4_routes` no ClientHello is peeked at."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        self.node = node
        if let routes = l4Routes, !routes.isEmpty, tls == nil, let n = node["l4_routes"] {
            decoder.error(n, "l4_routes need a TLS listener", hint: "they dispatch on the ClientHello's SNI; add `tls:` to this listener")
        }
    }
}

struct ListenerLimits: ConfigObject {
    var maxHeaderBytes = 32 * 1024
    var maxHeaders = 100
    var maxConnections = 10_000
    var maxURIBytes = 8 * 1024
    var clientHelloMaxBytes = 16 * 1024

    static let doc = "Limits of a listener. A request over a limit is answered 431 (headers) or 414 (target) and the connection closed."

    static var fields: [ConfigField<Self>] {[
        .field("max_header_bytes", \.maxHeaderBytes, .sizeInt(min: 1024, max: 1024 * 1024),
               doc: "Largest request head (request line and headers) accepted."),
        .field("max_headers", \.maxHeaders, .int(min: 1, max: 10_000), doc: "Most header lines accepted in a request."),
        .field("max_connections", \.maxConnections, .int(min: 1, max: 1_000_000),
               doc: "Most client connections open at once; beyond it the listener stops accepting and new connections wait in the kernel's accept queue until one closes. Each client connection holds a file descriptor, and a proxied one a second for its upstream: keep this below the process's descriptor limit (`ulimit -n`). When descriptors run out anyway, accepting pauses 500 ms at a time, with one warning per pause."),
        .field("max_uri_bytes", \.maxURIBytes, .sizeInt(min: 256, max: 1024 * 1024), doc: "Longest request target accepted."),
        .field("client_hello_max_bytes", \.clientHelloMaxBytes, .sizeInt(min: 512, max: 64 * 1024),
               doc: "With `l4_routes`: most bytes of TLS records held to find a whole ClientHello; a larger one closes the connection. 16KiB holds any ClientHello seen in practice (post-quantum key shares make them ~2KiB)."),
    ]}
}

struct ListenerTimeouts: ConfigObject {
    var clientHeader: Int64 = 10_000
    var clientBodyIdle: Int64 = 30_000
    var keepAliveIdle: Int64 = 60_000
    var clientHello: Int64 = 5_000

    static let doc = "Client-side timeouts of a listener."

    static var fields: [ConfigField<Self>] {[
        .field("client_header", \.clientHeader, .duration(min: 1),
               doc: "Time for a client to send a complete request head, from its first byte (408 after)."),
        .field("client_body_idle", \.clientBodyIdle, .duration(min: 1),
               doc: "Longest pause between two reads of a request body."),
        .field("keep_alive_idle", \.keepAliveIdle, .duration(min: 1),
               doc: "How long an idle keep-alive connection stays open waiting for the next request."),
        .field("client_hello", \.clientHello, .duration(min: 1),
               doc: "With `l4_routes`: time from the connection's start to a whole ClientHello; past it the connection closes."),
    ]}
}

struct PoolConfig: ConfigObject {
    var id: Positioned<String>?
    var endpoints: [EndpointConfig] = []
    var balancer = BalancerKind.roundRobin
    var timeouts = PoolTimeouts()
    var limits = PoolLimits()
    var tls: UpstreamTLSConfig?
    var node: ConfigNode?

    static let schemaName = "Pool"
    static let doc = "A set of upstream endpoints and how to spread requests over them."

    static var fields: [ConfigField<Self>] {[
        .field("id", \.id, ConfigType.identifier.positioned, required: true, doc: "Name routes use in `proxy:`."),
        .field("endpoints", \.endpoints, ConfigType.object(EndpointConfig.self).list(minItems: 1), required: true,
               doc: "The upstream servers."),
        .field("balancer", \.balancer, .enumeration(BalancerKind.self),
               doc: "How an endpoint is picked: `round_robin`, `weighted_round_robin` (by `weight`), `random`, or `least_request` (the less busy of two picked at random)."),
        .field("timeouts", \.timeouts, .object(PoolTimeouts.self), default: "defaults", doc: "Upstream timeouts."),
        .field("limits", \.limits, .object(PoolLimits.self), default: "defaults", doc: "Connection limits per endpoint."),
        .field("tls", \.tls, .object(UpstreamTLSConfig.self), default: "cleartext",
               doc: "Speak TLS (HTTPS) to the endpoints, verifying their certificates. Connections are pooled per endpoint and TLS settings: a reload that keeps them keeps the pooled connections."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        self.node = node
        if balancer != .weightedRoundRobin, let e = endpoints.first(where: { $0.weight != 1 }), let n = e.node?["weight"] {
            decoder.warning(n, "weights only matter with `balancer: weighted_round_robin`")
        }
        var seen: [HostPort: Int] = [:]
        for (i, e) in endpoints.enumerated() {
            guard let a = e.address else { continue }
            if let first = seen[a], let n = e.node {
                decoder.error(n, "endpoint \(a) is listed twice", hint: "it is already endpoints[\(first)]; use `weight` to send it more traffic")
            } else { seen[a] = i }
        }
    }
}

struct EndpointConfig: ConfigObject {
    var address: HostPort?
    var weight = 1
    var node: ConfigNode?

    static let schemaName = "Endpoint"
    static let doc = "One upstream server."
    static let shorthand: String? = "address"

    static var fields: [ConfigField<Self>] {[
        .field("address", \.address, .address(allowNames: true, allowEmptyHost: false, allowPortZero: false), required: true,
               doc: "`host:port` of the server: an IP address (`10.0.0.5:8080`, `[2001:db8::5]:80`) or a host name, resolved when Prox connects."),
        .field("weight", \.weight, .int(min: 1, max: 1000), doc: "Share of requests under `weighted_round_robin`."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) { self.node = node }
}

struct PoolTimeouts: ConfigObject {
    var connect: Int64 = 5_000
    var responseHeader: Int64 = 30_000
    var bodyIdle: Int64 = 60_000
    var idle: Int64 = 60_000

    static let doc = "Upstream timeouts of a pool. A connect failure or timeout answers 502/504 with `X-Prox-Error`."

    static var fields: [ConfigField<Self>] {[
        .field("connect", \.connect, .duration(min: 1), doc: "Time to open a connection to an endpoint."),
        .field("response_header", \.responseHeader, .duration(min: 1),
               doc: "Time from the whole request (head and body) having been sent to the upstream's complete response head."),
        .field("body_idle", \.bodyIdle, .duration(min: 1), doc: "Longest pause between two reads of an upstream response body."),
        .field("idle", \.idle, .duration(min: 1), doc: "How long an idle keep-alive upstream connection is kept for reuse."),
    ]}
}

struct PoolLimits: ConfigObject {
    var maxConnectionsPerEndpoint = 1024
    var maxIdlePerEndpoint = 256

    static let doc = "Connection limits of a pool, per endpoint and per event loop."

    static var fields: [ConfigField<Self>] {[
        .field("max_connections_per_endpoint", \.maxConnectionsPerEndpoint, .int(min: 1, max: 1_000_000),
               doc: "Most connections open to one endpoint, shared out among the event loops; a request that needs one more is answered 503 `upstream_max_connections` (no queueing yet)."),
        .field("max_idle_per_endpoint", \.maxIdlePerEndpoint, .int(min: 0, max: 1_000_000),
               doc: "Most idle keep-alive connections kept to one endpoint."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        if maxIdlePerEndpoint > maxConnectionsPerEndpoint, let n = node["max_idle_per_endpoint"] {
            decoder.warning(n, "more idle connections than connections allowed; at most \(maxConnectionsPerEndpoint) are kept")
        }
    }
}
