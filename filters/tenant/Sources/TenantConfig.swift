import ProxCore
import ProxRegex

/// Config of the `tenant` filter.
public struct TenantConfig: ConfigObject {
    public var hosts: [ConfigMapEntry<String>] = []
    public var hostRegex: Positioned<Regex>?
    public var header: HeaderName?
    public var tenants: [Positioned<String>] = []
    public var setHeader = HeaderName("X-Tenant")
    public var status: Int?
    public var allowUnknown = false
    public var defaultTenant: Positioned<String>?

    public init() {}

    public static let doc = "Finds the request's tenant, sets it as a header on the request sent upstream (replacing any the client sent), and refuses requests whose tenant is unknown with `X-Prox-Error: unknown_tenant`. The tenant comes from the Host (`hosts`, then `host_regex`) or from a request header (`header`). Tenant ids are letters, digits, `.`, `_` and `-`."

    static var idType: ConfigType<String> { ConfigType<String>.string(minLength: 1).checked { s, node, d in
        guard isTenantID(s.utf8) else {
            d.error(node, "'\(s)' is not a tenant id", hint: "tenant ids use letters, digits, '.', '_' and '-'")
            return false
        }
        return true
    } }

    public static var fields: [ConfigField<Self>] {[
        .field("hosts", \.hosts, idType.map(keyDocName: "host"), default: "none",
               doc: "Host -> tenant id (`acme.example.com: acme`). Hosts match case-insensitively, without the port. Looked up first."),
        .field("host_regex", \.hostRegex, .regex(caseless: true, anchoredWhole: true),
               doc: "A regex over the whole host (lowercase, no port) with a named group `tenant`: `(?<tenant>[a-z0-9-]+)\\.saas\\.example\\.com`. Tried when `hosts` has no entry."),
        .field("header", \.header, .headerName,
               doc: "Take the tenant id from this request header instead of the Host (for traffic an authenticating layer in front has already tagged). Not with `hosts` or `host_regex`; list the ids in `tenants` so a client cannot pick any tenant."),
        .field("tenants", \.tenants, idType.positioned.list(), default: "any id",
               doc: "The known tenant ids. When given, an id found by `host_regex` or `header` that is not listed is unknown."),
        .field("set_header", \.setHeader, .headerName, doc: "The request header the tenant id is sent upstream in."),
        .field("status", \.status, .int(min: 400, max: 499), default: "421 from the Host, 403 from a header",
               doc: "Status for an unknown tenant. From the Host the default is 421 Misdirected Request (RFC 9110 15.5.20): this proxy serves no tenant at that name, and a client that reused a connection for it (HTTP/2 coalescing, a wildcard certificate) retries on a new one; it does not claim the resource exists but is forbidden. From a header the default is 403: the name was fine, the tenant is not accepted."),
        .field("allow_unknown", \.allowUnknown, .bool,
               doc: "Pass requests whose tenant is unknown, tagged with `default_tenant`, instead of refusing them."),
        .field("default_tenant", \.defaultTenant, idType.positioned,
               doc: "The tenant id unknown requests are tagged with; required with `allow_unknown: true`."),
    ]}

    public static var rules: [ConfigRule] {[
        .atMostOne(["header", "hosts"]),
        .atMostOne(["header", "host_regex"]),
        .requires("default_tenant", ["allow_unknown"]),
    ]}

    public mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        if node.entries != nil, node["hosts"] == nil, node["host_regex"] == nil, node["header"] == nil {
            decoder.error(node, "no way to find the tenant", hint: "add `hosts`, `host_regex` or `header`")
        }
        if let r = hostRegex, r.value.captureNames["tenant"] == nil {
            decoder.error(r.node, "the regex has no group named 'tenant'", hint: "name the group that holds the id: (?<tenant>[a-z0-9-]+)")
        }
        if allowUnknown && defaultTenant == nil, let n = node["allow_unknown"] {
            decoder.error(n, "`allow_unknown: true` needs `default_tenant`", hint: "add `default_tenant: <id>` for requests of no known tenant")
        }
        if !allowUnknown, let d = defaultTenant, node["allow_unknown"] != nil {
            decoder.warning(d.node, "`default_tenant` is unused while `allow_unknown` is false")
        }
        if header != nil, tenants.isEmpty, let n = node["header"] {
            decoder.warning(n, "any value of \(header!.name) is accepted as a tenant id",
                            hint: "list the known ids in `tenants`, unless a layer in front sets this header and removes the client's")
        }
        var seen: [String: ConfigNode] = [:]
        for h in hosts {
            let key = normalizeHost(h.key)
            if seen[key] != nil {
                decoder.error(h.keyNode, "host '\(h.key)' is listed twice", hint: "hosts match case-insensitively and without the port")
            }
            seen[key] = h.keyNode
        }
    }
}

/// Letters, digits, `.`, `_`, `-`: safe in a header value and a log line.
func isTenantID<C: Collection<UInt8>>(_ bytes: C) -> Bool {
    guard !bytes.isEmpty, bytes.count <= 128 else { return false }
    return bytes.allSatisfy { b in
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D
    }
}
