import ProxCore

/// Config of the `body_limit` filter.
public struct BodyLimitConfig: ConfigObject {
    public var maxBytes: Int64 = 0

    public init() {}

    public static let doc = "Refuses request bodies larger than `max_bytes` with 413 (`X-Prox-Error: body_too_large`): at once when Content-Length says so, and while streaming for chunked bodies (the connection is then closed, since the response may already be under way). With several limits on a route, the smallest applies."

    public static var fields: [ConfigField<Self>] {[
        .field("max_bytes", \.maxBytes, .size(min: 0), required: true,
               doc: "Largest request body accepted, in bytes (`1MiB`, `64KiB`, `500000`). 0 allows no body at all."),
    ]}
}
