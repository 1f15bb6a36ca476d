import ProxCore

/// Config of the `ext_filter` filter.
public struct ExtFilterConfig: ConfigObject {
    public var url = ""
    public var timeout: Int64 = 200
    public var failMode = "closed"
    public var failureStatus = 503
    public var maxBodyBytes: Int64 = 0
    public var maxIdleConnections = 16
    public var maxConnections = 256

    public init() {}

    public static let doc = "Asks an external HTTP service, written in any language, what to do with each request: Prox POSTs the request head as JSON (and, with `max_body_bytes`, the start of the body) over a pooled keep-alive connection, and the service answers `continue` (optionally with header edits) or `respond` (status, headers, body), which Prox answers the client with. The whole body still streams to the upstream. When the service is slow, unreachable or answers something that is not a verdict, `fail_mode` decides: `closed` answers `failure_status`, `open` lets the request through. The protocol is in docs/FILTERS.md, \"External filters\". `prox dry-run` does not call the service: it says what would be asked and assumes `continue`."

    public static var fields: [ConfigField<Self>] {[
        .field("url", \.url, .string(minLength: 1), required: true,
               doc: "Where to POST: `http://host:port/path` (an IP address or a name, resolved once per event loop; `https` is not supported yet)."),
        .field("timeout", \.timeout, .duration(min: 1, max: 60_000),
               doc: "The longest the whole call may take (connection, request, answer), e.g. `200ms`, `1s`. Past it, `fail_mode` applies and the connection is closed."),
        .field("fail_mode", \.failMode, .oneOf(["closed", "open"]),
               doc: "What a failed call does: `closed` answers `failure_status` (`X-Prox-Error: ext_filter_timeout`, `ext_filter_unavailable` or `ext_filter_bad_answer`); `open` lets the request go on as if the service had said `continue`."),
        .field("failure_status", \.failureStatus, .int(min: 400, max: 599),
               doc: "Status answered when a call fails and `fail_mode` is `closed`."),
        .field("max_body_bytes", \.maxBodyBytes, .size(min: 0, max: 1 << 20),
               doc: "Send the start of the request body too, up to this many bytes (at most `1MiB`); 0 sends the head only. Prox reads that much of the body before it asks (answering `100 Continue` itself when the client waits for it)."),
        .field("max_idle_connections", \.maxIdleConnections, .int(min: 0, max: 10_000),
               doc: "Keep-alive connections to the service kept open per event loop between calls."),
        .field("max_connections", \.maxConnections, .int(min: 1, max: 100_000),
               doc: "Calls in flight per event loop; a call beyond it fails at once (`ext_filter_unavailable`) rather than queue."),
    ]}

    public mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        guard let n = node["url"], !url.isEmpty else { return }
        if case .failure(let why) = ExtFilterURL.parse(url) { decoder.error(n, why.message, hint: why.hint) }
    }
}

/// The service's address, split from `url` at compile time.
public struct ExtFilterURL: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// The request target (path and query) the calls are POSTed to.
    public var path: String
    /// The `Host` header the calls carry.
    public var hostHeader: String

    public struct Problem: Error {
        public var message: String
        public var hint: String?
    }

    public static func parse(_ url: String) -> Result<ExtFilterURL, Problem> {
        let lower = url.lowercased()
        if lower.hasPrefix("https://") {
            return .failure(Problem(message: "https is not supported for ext_filter yet", hint: "use http:// on a trusted network, or a local sidecar"))
        }
        guard lower.hasPrefix("http://") else {
            return .failure(Problem(message: "'\(url)' is not an http:// URL", hint: "for example http://127.0.0.1:9000/check"))
        }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var path = String(rest.dropFirst(authority.count))
        if path.contains("#") { return .failure(Problem(message: "a fragment has no meaning in ext_filter's url", hint: nil)) }
        if path.isEmpty { path = "/" }
        if path.hasPrefix("?") { path = "/" + path }
        if path.utf8.contains(where: { $0 <= 32 || $0 >= 127 }) {
            return .failure(Problem(message: "the path of '\(url)' holds spaces, control or non-ASCII bytes", hint: "percent-encode them"))
        }
        if authority.contains("@") { return .failure(Problem(message: "user information in ext_filter's url is not supported", hint: nil)) }
        let a = String(authority)
        let withPort = a.hasPrefix("[") ? (a.hasSuffix("]") ? a + ":80" : a) : (a.contains(":") ? a : a + ":80")
        switch HostPort.parse(withPort, allowNames: true, allowEmptyHost: false, allowPortZero: false) {
        case .success(let hp):
            return .success(ExtFilterURL(host: hp.host, port: hp.port, path: path, hostHeader: a))
        case .failure(let e):
            return .failure(Problem(message: "bad host or port in '\(url)': \(e.message)", hint: e.hint ?? "for example http://127.0.0.1:9000/check"))
        }
    }
}
