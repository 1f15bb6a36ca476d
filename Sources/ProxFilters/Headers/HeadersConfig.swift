import ProxCore

/// Config of the `headers` filter.
public struct HeadersConfig: ConfigObject {
    public var request: HeaderEditsConfig?
    public var response: HeaderEditsConfig?

    public init() {}

    public static let doc = "Edits request headers (before the request goes upstream) and response headers (before the response goes to the client). Values are templates: `{client_ip}`, `{request_id}`, `{host}`, `{path}`, `{header.NAME}`, regex captures such as `{path.1}`."

    public static var fields: [ConfigField<Self>] {[
        .field("request", \.request, .object(HeaderEditsConfig.self), doc: "Edits of the request sent upstream."),
        .field("response", \.response, .object(HeaderEditsConfig.self), doc: "Edits of the response sent to the client."),
    ]}

    public mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        // Only for an empty object: with a misspelt key, "unknown key" says it better.
        if node.entries?.isEmpty == true {
            decoder.error(node, "edits nothing", hint: "add `request:` or `response:` with set, add or remove")
        }
    }
}

/// Header edits of one direction. Applied in this order: `remove`, then `set`, then `add`.
public struct HeaderEditsConfig: ConfigObject {
    public var set: [ConfigMapEntry<Positioned<String>>] = []
    public var add: [ConfigMapEntry<Positioned<String>>] = []
    public var remove: [Positioned<HeaderName>] = []

    public init() {}

    public static let doc = "Header edits, applied in order: `remove`, then `set`, then `add`. Names are case-insensitive."

    static var valueMap: ConfigType<[ConfigMapEntry<Positioned<String>>]> {
        ConfigType.template.map(keyDocName: "header name", keySchema: headerNameKeySchema, key: checkHeaderNameKey)
    }

    public static var fields: [ConfigField<Self>] {[
        .field("remove", \.remove, ConfigType.headerName.positioned.list(), default: "none",
               doc: "Headers to remove, every line of each."),
        .field("set", \.set, valueMap, default: "none",
               doc: "Headers to set: replaces every line of the name with one line whose value is the template rendered."),
        .field("add", \.add, valueMap, default: "none",
               doc: "Headers to add: one more line, keeping those already there."),
    ]}
}
