import ProxCore

/// Config of the `body_limit` filter.
public struct BodyLimitConfig: ConfigObject {
    public var maxBytes: Int64 = 0

    public init() {}

    public static let doc = "Refuses request bodies larger than `max_bytes` with 413 (`X-Prox-Error: body_too_large`) and closes the connection (the rest of the body is unread): at once when Content-Length says so, before any upstream is contacted; otherwise in its request-body phase, as soon as the body bytes received go over it (chunked bodies). Body that arrived with the head or while the chain ran is counted before the upstream is contacted, so such a body is refused without contacting it; once the upstream's response has started, the exchange is cut instead. Each `body_limit` on a route enforces its own limit: the smallest refuses first."

    public static var fields: [ConfigField<Self>] {[
        .field("max_bytes", \.maxBytes, .size(min: 0), required: true,
               doc: "Largest request body accepted, in bytes (`1MiB`, `64KiB`, `500000`). 0 allows no body at all."),
    ]}
}
