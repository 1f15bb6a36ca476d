import ProxCore

/// Config of the `ip_access` filter.
public struct IPAccessConfig: ConfigObject {
    public var allow: [CIDR] = []
    public var deny: [CIDR] = []

    public init() {}

    public static let doc = "Allows or refuses clients by address. A client in `deny` is refused, even when it is also in `allow` (deny wins). Otherwise, when `allow` is given, only clients in it pass; when only `deny` is given, everyone else passes. Refused requests get 403 with `X-Prox-Error: ip_denied`. The address checked is the connection's peer."

    public static var fields: [ConfigField<Self>] {[
        .field("allow", \.allow, ConfigType.cidr.list(), default: "everyone",
               doc: "Addresses or blocks allowed (`10.0.0.0/8`, `127.0.0.1`, `::1`)."),
        .field("deny", \.deny, ConfigType.cidr.list(), default: "nobody",
               doc: "Addresses or blocks refused; wins over `allow`."),
    ]}

    public mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        func empty(_ n: ConfigNode?) -> Bool { n == nil || n?.items?.isEmpty == true }
        // Not with a misspelt key: "unknown key" says it better.
        let known = node.entries?.allSatisfy { $0.key == "allow" || $0.key == "deny" } ?? false
        if known && empty(node["allow"]) && empty(node["deny"]) {
            decoder.error(node, "allows everyone", hint: "list addresses in `allow` or `deny`")
        }
    }
}
