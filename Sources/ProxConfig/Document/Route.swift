import ProxCore
import ProxRegex

struct RouteConfig: ConfigObject {
    var id: Positioned<String>?
    var listeners: [Positioned<String>]?
    var tags: [String]?
    var match: MatchConfig?
    var rewrite: RewriteConfig?
    var chain: ChainRef?
    var proxy: ProxyConfig?
    var respond: RespondConfig?
    var redirect: RedirectConfig?
    var websocket: WebSocketConfig?
    var requireTLS: RequireTLSConfig?
    var requireClientCert = false
    var node: ConfigNode?

    static let schemaName = "Route"
    static let doc = "What to do with the requests a `match` selects: run a chain of filters, then `proxy`, `respond` or `redirect`."
    static let rules: [ConfigRule] = [.exactlyOne(["proxy", "respond", "redirect"])]

    static var fields: [ConfigField<Self>] {[
        .field("id", \.id, ConfigType.identifier.positioned, required: true,
               doc: "Name of the route in logs, traces, `{route}` and diagnostics."),
        .field("listeners", \.listeners, ConfigType.identifier.positioned.list(minItems: 1), default: "all listeners",
               doc: "Ids of the listeners this route applies to."),
        .field("tags", \.tags, ConfigType.identifier.list(), default: "none",
               doc: "Labels for policies to select the route by (`prox validate --policy`): `[public, payments]`. They change nothing else."),
        .field("match", \.match, .object(MatchConfig.self), default: "every request",
               doc: "Which requests the route takes. A route without `match` takes every request (a catch-all): routes after it can never match."),
        .field("rewrite", \.rewrite, .object(RewriteConfig.self),
               doc: "Changes to the path and Host sent upstream; runs after the chain."),
        .field("chain", \.chain, ChainRef.type, default: "none",
               doc: "Filters run on the request, in order, before the action (and on the response, in reverse): the id of a named chain, or a list of filter entries."),
        .field("proxy", \.proxy, .object(ProxyConfig.self), doc: "Send the request to a pool."),
        .field("respond", \.respond, .object(RespondConfig.self), doc: "Answer directly."),
        .field("redirect", \.redirect, .object(RedirectConfig.self), doc: "Answer with a redirect."),
        .field("websocket", \.websocket, .object(WebSocketConfig.self), default: "enabled, `idle_timeout: 60s`",
               doc: "WebSocket handshakes on a `proxy` route: forwarded, and a `101` from the upstream turns the connection into a byte tunnel; or, with `websocket: false`, not forwarded (the upstream answers a plain GET)."),
        .field("require_tls", \.requireTLS, .object(RequireTLSConfig.self), default: "none",
               doc: "Requests that came over cleartext (a listener without `tls`) are not served: `redirect` answers 308 to the same URL with `https://` (before the chain runs), `reject` answers 403 `tls_required`. Requests over TLS go on as usual."),
        .field("require_client_cert", \.requireClientCert, .bool,
               doc: "Only requests on a connection whose client presented a certificate the listener verified (`tls.client_auth`) are served; others get 403 `client_certificate_required`, before the chain runs. Useful with `client_auth: {mode: optional}`, where some routes need a certificate and others do not."),
    ]}

    static func hint(forUnknownKey key: String) -> String? {
        switch key {
        case "host", "path", "methods", "method", "headers", "query", "cookies":
            return "'\(key)' goes under `match:`"
        case "pool", "upstream", "pass", "to":
            return "write `proxy: <pool id>`"
        case "split", "canary", "weights":
            return "a traffic split goes under `proxy:`: `proxy: {split: [{pool: stable, weight: 90}, {pool: canary, weight: 10}]}`"
        case "filters", "stages", "middleware":
            return "the filters of a route go in `chain:`"
        case "websockets", "web_socket", "upgrade":
            return "write `websocket: false` or `websocket: {idle_timeout: 5m}`"
        default:
            return nil
        }
    }

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        self.node = node
        if websocket != nil, proxy == nil, let n = node["websocket"] {
            decoder.warning(n, "`websocket` only matters on a `proxy` route", hint: "this route answers itself: a handshake gets its answer like any GET")
        }
    }
}

/// `routes[].websocket`.
struct WebSocketConfig: ConfigObject {
    var enabled = true
    var idleTimeout = WebSocketPolicy.defaultIdleTimeout

    static let schemaName = "WebSocket"
    static let doc = "WebSocket pass-through (RFC 6455) on a route. A handshake (`GET`, HTTP/1.1, `Upgrade: websocket`, `Connection: upgrade`) runs the route's chain like any request, so its filters (access rules, headers, limits) apply to it; it goes upstream with `Connection: upgrade` and `Upgrade: websocket` and no other hop-by-hop header. A `101 Switching Protocols` answer turns both connections into a byte tunnel: bytes flow both ways unchanged, with backpressure, until either side closes (the other is then flushed and closed) or nothing flows for `idle_timeout`. The upstream connection is never reused. Any other answer is proxied as a normal response. The access log gets one line per tunnel when it closes: status 101, its duration, `bytes_in` (client to upstream) and `bytes_out` (upstream to client), `\"upgrade\":\"websocket\"`. Written `websocket: false` to turn it off."
    static let shorthand: String? = "enabled"

    static var fields: [ConfigField<Self>] {[
        .field("enabled", \.enabled, .bool,
               doc: "Forward handshakes. `false`: `Upgrade` is not forwarded (as for every hop-by-hop header) and the upstream answers the request as a plain GET; a `101` it sends anyway is a 502 `upstream_bad_response`."),
        .field("idle_timeout", \.idleTimeout, .duration(min: 1),
               doc: "A tunnel with no byte in either direction for this long is closed (both connections). nginx's `proxy_read_timeout` default; raise it for applications that stay silent longer than they ping."),
    ]}
}

/// `routes[].require_tls`.
struct RequireTLSConfig: ConfigObject {
    enum Action: String, CaseIterable, Sendable { case redirect, reject }
    var action: Action = .redirect
    var httpsPort: Int?

    static let schemaName = "RequireTLS"
    static let doc = "What a request that came over cleartext gets: `redirect` (308 to `https://HOST[:https_port]TARGET`, method and body kept by the client) or `reject` (403 `tls_required`, with the request id). `require_tls: redirect` is short for `{action: redirect}`."
    static let shorthand: String? = "action"

    static var fields: [ConfigField<Self>] {[
        .field("action", \.action, .enumeration(Action.self), doc: "`redirect` or `reject`."),
        .field("https_port", \.httpsPort, .int(min: 1, max: 65535), default: "443 (no port in the URL)",
               doc: "The port in the redirect's URL, for an HTTPS listener not on 443 (`https://shop.example:8443/...`)."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        if action == .reject, let n = node["https_port"] {
            decoder.warning(n, "https_port is only used by `action: redirect`")
        }
    }
}

/// A route's chain: a named chain or an inline list.
enum ChainRef {
    case named(Positioned<String>)
    case inline([DecodedFilter])

    static var type: ConfigType<ChainRef> {
        let named = ConfigType.identifier.positioned
        let inline = ConfigType.filterEntry.list()
        return ConfigType(
            docName: "chain id or list of [filter entries](#filters)",
            schema: { ctx in .object([("anyOf", .array([named.schema(&ctx), inline.schema(&ctx)]))]) },
            decode: { node, d in
                if node.items != nil { return inline.decode(node, &d).map { .inline($0) } }
                if node.string != nil { return named.decode(node, &d).map { .named($0) } }
                d.error(node, "expected a chain id or a list of filter entries, found \(node.kindDescription)")
                return nil
            })
    }
}

struct MatchConfig: ConfigObject {
    var host: [HostMatchConfig]?
    var path: PathMatchConfig?
    var methods: [HTTPMethod]?
    var headers: [ConfigMapEntry<ValueMatchConfig>] = []
    var query: [ConfigMapEntry<ValueMatchConfig>] = []
    var cookies: [ConfigMapEntry<ValueMatchConfig>] = []

    static let schemaName = "Match"
    static let doc = "Conditions on the request; all must hold. Within `host` and `methods`, any item may match."

    static var fields: [ConfigField<Self>] {[
        .field("host", \.host, ConfigType.object(HostMatchConfig.self).listOrSingle(), default: "any host",
               doc: "Host (from the Host header, without port, lowercased): `api.example.com`, `*.example.com` (any subdomain, not the bare domain), or `{regex: ...}`."),
        .field("path", \.path, .object(PathMatchConfig.self), default: "any path", doc: "The path (the target up to `?`, as received)."),
        .field("methods", \.methods, ConfigType.httpMethod.list(minItems: 1), default: "any method",
               doc: "Request methods, case-sensitive: `[GET, HEAD]`."),
        .field("headers", \.headers, ConfigType.object(ValueMatchConfig.self).map(keyDocName: "header name", keySchema: headerNameKeySchema, key: checkHeaderNameKey),
               default: "none", doc: "Conditions on request headers, by name (case-insensitive; the first line of the name is tested)."),
        .field("query", \.query, ConfigType.object(ValueMatchConfig.self).map(keyDocName: "parameter name"), default: "none",
               doc: "Conditions on query parameters, by name (decoded; the first occurrence is tested)."),
        .field("cookies", \.cookies, ConfigType.object(ValueMatchConfig.self).map(keyDocName: "cookie name"), default: "none",
               doc: "Conditions on cookies, by name."),
    ]}
}

struct HostMatchConfig: ConfigObject {
    var name: String?
    var regex: Positioned<Regex>?

    static let schemaName = "HostMatch"
    static let doc = "One host: a name, or a PCRE2 regex matched against the whole host (it is anchored at both ends and case-insensitive; named groups are available to templates as `{host.NAME}`)."
    static let shorthand: String? = "name"
    static let rules: [ConfigRule] = [.exactlyOne(["name", "regex"])]

    static var fields: [ConfigField<Self>] {[
        .field("name", \.name, ConfigType<String>.string(minLength: 1).checked(checkHostName),
               doc: "Exact host (`api.example.com`) or wildcard (`*.example.com`: one or more labels before `.example.com`)."),
        .field("regex", \.regex, .regex(caseless: true, anchoredWhole: true),
               doc: "PCRE2 pattern the whole host must match, such as `(?<tenant>[a-z0-9-]+)\\.example\\.com`."),
    ]}

    static func checkHostName(_ s: String, _ node: ConfigNode, _ d: inout ConfigDecoder) -> Bool {
        // Byte tests on the UTF-8 in place: this runs for every route's host.
        var text = s
        return text.withUTF8 { b in
            if b.contains(UInt8(ascii: ":")) && b.first != UInt8(ascii: "[") {
                d.error(node, "host patterns have no port", hint: "the port is the listener's; write the host alone")
                return false
            }
            if b.first == UInt8(ascii: "[") {
                guard s.hasSuffix("]"), case .v6? = IPAddress(s.dropFirst().dropLast()) else {
                    d.error(node, "'\(s)' is not an IPv6 address in brackets"); return false
                }
                return true
            }
            // `hasPrefix("*.")`: a character after the dot that is not ASCII may join it.
            let wildcard = b.count >= 2 && b[0] == UInt8(ascii: "*") && b[1] == UInt8(ascii: ".")
                && (b.count == 2 || b[2] < 0x80 || s.hasPrefix("*."))
            let rest = UnsafeBufferPointer(rebasing: b[(wildcard ? 2 : 0)...])
            if rest.contains(UInt8(ascii: "*")) {
                d.error(node, "'\(s)': '*' is only allowed as the whole first label", hint: "write *.example.com, or use {regex: ...}")
                return false
            }
            if !isHostName(utf8: rest) {
                d.error(node, "'\(s)' is not a valid host name", hint: "for a pattern, use {regex: ...}")
                return false
            }
            return true
        }
    }
}

struct PathMatchConfig: ConfigObject {
    var exact: String?
    var prefix: String?
    var regex: Positioned<Regex>?

    static let schemaName = "PathMatch"
    static let doc = "How the path is matched: exactly, by prefix, or by a PCRE2 regex. A regex searches the path as written: it is not anchored unless it says so (`^/api/`). Its groups are available to templates as `{path.1}`, `{path.NAME}`. A regex that is an anchored literal and nothing else (`^/api/`) is matched as the prefix it spells, with no regex run per request."
    static let rules: [ConfigRule] = [.exactlyOne(["exact", "prefix", "regex"])]

    static var fields: [ConfigField<Self>] {[
        .field("exact", \.exact, ConfigType<String>.string(minLength: 1).checked(startsWithSlash), doc: "The whole path: `/health`."),
        .field("prefix", \.prefix, ConfigType<String>.string(minLength: 1).checked(startsWithSlash),
               doc: "A prefix of the path, compared byte for byte: `/api/` takes `/api/users`, not `/api`."),
        .field("regex", \.regex, .regex(), doc: "PCRE2 pattern searched in the path: `^/users/(?<id>[0-9]+)$`."),
    ]}

    static func startsWithSlash(_ s: String, _ node: ConfigNode, _ d: inout ConfigDecoder) -> Bool {
        guard s.hasPrefix("/") else { d.error(node, "paths start with '/'", hint: "write /\(s)"); return false }
        return true
    }
}

struct ValueMatchConfig: ConfigObject {
    var exact: String?
    var regex: Positioned<Regex>?
    var present: Bool?
    var absent: Bool?

    static let schemaName = "ValueMatch"
    static let doc = "A condition on one header, query parameter or cookie. A plain string means `exact`."
    static let shorthand: String? = "exact"
    static let rules: [ConfigRule] = [.exactlyOne(["exact", "regex", "present", "absent"])]

    static var fields: [ConfigField<Self>] {[
        .field("exact", \.exact, .string, doc: "The value equals this string."),
        .field("regex", \.regex, .regex(), doc: "PCRE2 pattern searched in the value (anchor it with `^...$` for a whole match)."),
        .field("present", \.present, .constTrue, doc: "The value is there (any value, even empty)."),
        .field("absent", \.absent, .constTrue, doc: "The value is not there."),
    ]}

    var test: ValueTest? {
        if let e = exact { return .exact(e) }
        if let r = regex { return .regex(r.value) }
        if present != nil { return .present }
        if absent != nil { return .absent }
        return nil
    }
}

struct RewriteConfig: ConfigObject {
    var replacePrefix: Positioned<String>?
    var pathRegex: Positioned<Regex>?
    var pathReplacement: Positioned<String>?
    var host: Positioned<String>?

    static let schemaName = "Rewrite"
    static let doc = "Changes to the request sent upstream, applied after the route's chain. The query string is kept. Templates and filters still see the path as received in `{path}`."
    static let rules: [ConfigRule] = [
        .atMostOne(["replace_prefix", "path_regex"]),
        .requires("path_regex", ["path_replacement"]),
        .requires("path_replacement", ["path_regex"]),
    ]

    static var fields: [ConfigField<Self>] {[
        .field("replace_prefix", \.replacePrefix, ConfigType<String>.string(minLength: 1).checked(PathMatchConfig.startsWithSlash).positioned,
               doc: "Replaces the prefix the route matched (`match.path.prefix`) with this one: with prefix `/api/`, `replace_prefix: /v2/` sends `/api/users?x=1` as `/v2/users?x=1`."),
        .field("path_regex", \.pathRegex, .regex(),
               doc: "PCRE2 pattern searched in the path; its first match is replaced with `path_replacement`. When it does not match, the path is kept."),
        .field("path_replacement", \.pathReplacement, ConfigType<String>.string.positioned,
               doc: "Replacement for `path_regex`'s match: `$1`, `${name}` insert groups, `$$` is a dollar sign."),
        .field("host", \.host, .template,
               doc: "Template for the Host header sent upstream, such as `{host.tenant}.internal`. Without it, the client's Host is sent."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        if node.entries?.isEmpty == true {
            decoder.error(node, "rewrites nothing", hint: "set replace_prefix, path_regex with path_replacement, or host")
        }
        if let r = pathRegex, let rep = pathReplacement {
            do throws(RegexError) {
                try r.value.validateReplacement(rep.value)
            } catch {
                decoder.error(at: rep.node.mark(atOffset: error.offset), path: rep.node.path,
                              "invalid replacement: \(error.message) (at offset \(error.offset))")
            }
        }
    }
}

struct ProxyConfig: ConfigObject {
    var pool: Positioned<String>?
    var split: [SplitEntryConfig]?
    var node: ConfigNode?

    static let schemaName = "Proxy"
    static let doc = "Sends the request to a pool. Written `proxy: <pool id>`, `proxy: {pool: <pool id>}`, or with a weighted traffic split between pools: `proxy: {split: [{pool: stable, weight: 90}, {pool: canary, weight: 10}]}`."
    static let shorthand: String? = "pool"
    static let rules: [ConfigRule] = [.exactlyOne(["pool", "split"])]

    static var fields: [ConfigField<Self>] {[
        .field("pool", \.pool, ConfigType.identifier.positioned, doc: "Id of the pool."),
        .field("split", \.split, ConfigType.object(SplitEntryConfig.self).list(minItems: 1),
               doc: "A weighted choice between pools, made afresh for every request: each pool gets `weight / (sum of weights)` of the requests, at random (no stickiness). Each pool at most once; the weights must sum to more than 0."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        self.node = node
        guard let split else { return }
        var seen: [String: Int] = [:]
        for (i, e) in split.enumerated() {
            guard let p = e.pool else { continue }
            if let first = seen[p.value] {
                decoder.error(p.node, "pool '\(p.value)' is already in the split", hint: "it is split[\(first)]; give that entry the combined weight")
            } else { seen[p.value] = i }
        }
        if !split.isEmpty, split.allSatisfy({ $0.pool != nil }), split.reduce(0, { $0 + $1.weight }) == 0,
           let n = node["split"] {
            decoder.error(n, "the split's weights sum to 0: no pool would get any request", hint: "give at least one pool a weight above 0")
        }
    }
}

struct SplitEntryConfig: ConfigObject {
    var pool: Positioned<String>?
    var weight = 0
    var node: ConfigNode?

    static let schemaName = "SplitEntry"
    static let doc = "One pool of a traffic split and its share."

    static var fields: [ConfigField<Self>] {[
        .field("pool", \.pool, ConfigType.identifier.positioned, required: true, doc: "Id of the pool."),
        .field("weight", \.weight, .int(min: 0, max: 1_000_000), required: true,
               doc: "Share of requests: `weight / (sum of the split's weights)`. 0 sends none (keeps the entry in place for later)."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) { self.node = node }
}

struct RespondConfig: ConfigObject {
    var status = 200
    var headers: [ConfigMapEntry<Positioned<String>>] = []
    var body: Positioned<String>?

    static let schemaName = "Respond"
    static let doc = "Answers the request directly, without an upstream."

    static var fields: [ConfigField<Self>] {[
        .field("status", \.status, .int(min: 200, max: 599), doc: "Status code."),
        .field("headers", \.headers, ConfigType.template.map(keyDocName: "header name", keySchema: headerNameKeySchema, key: checkHeaderNameKey),
               default: "none", doc: "Response headers; values are templates. Without `Content-Type`, a non-empty body is sent as `text/plain; charset=utf-8`."),
        .field("body", \.body, .template, default: "empty", doc: "Body template: `Hello from {host}\\n`."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        for h in headers where [HeaderName.contentLength, .transferEncoding, .connection].contains(HeaderName(h.key)) {
            decoder.error(h.keyNode, "'\(h.key)' is set by Prox for its own answers")
        }
        if status == 204 || status == 304, let b = body, !b.value.isEmpty {
            decoder.error(b.node, "a \(status) response has no body", hint: "remove `body`, or use another status")
        }
    }
}

struct RedirectConfig: ConfigObject {
    var status = 302
    var location: Positioned<String>?

    static let schemaName = "Redirect"
    static let doc = "Answers with a redirect. Written `redirect: <location>` or with a status."
    static let shorthand: String? = "location"

    static var fields: [ConfigField<Self>] {[
        .field("status", \.status, .oneOf([301, 302, 303, 307, 308]),
               doc: "301 or 308 (permanent), 302, 303 or 307 (temporary); 307 and 308 keep the method and body."),
        .field("location", \.location, .template, required: true,
               doc: "Template for the `Location` header: `https://{host}{target}`, `/docs/{path.1}`."),
    ]}
}
