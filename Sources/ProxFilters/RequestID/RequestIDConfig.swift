import ProxCore

/// Config of the `request_id` filter.
public struct RequestIDConfig: ConfigObject {
    public var header: HeaderName = .xRequestID
    public var trustIncoming = false
    public var setResponseHeader = true

    public init() {}

    public static let doc = "Gives every request an id: kept from the client when trusted and valid, otherwise generated (32 hex digits). The id is set on the request sent upstream, on the response, in `{request_id}` for templates, and in the access log."

    public static var fields: [ConfigField<Self>] {[
        .field("header", \.header, .headerName,
               doc: "Header that carries the id, on the request sent upstream and on the response."),
        .field("trust_incoming", \.trustIncoming, .bool,
               doc: "Keep an id the client sent in `header` when it is valid (1 to 128 visible ASCII characters, no quotes, commas or backslashes). When false, a client's id is replaced."),
        .field("set_response_header", \.setResponseHeader, .bool,
               doc: "Also set `header` on the response to the client."),
    ]}
}
