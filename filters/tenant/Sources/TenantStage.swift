import ProxCore
import ProxRegex

/// Sets the tenant header on the upstream request, or refuses an unknown tenant.
///
/// Host lookups use the host string the engine already made for routing; known ids are `String`s
/// made at compile time, so an exact-host hit or a listed header value builds no string per request.
/// Only a `host_regex` capture (or a header value with no `tenants` list) becomes a new string.
public struct TenantStage: Stage {
    public enum Source: Sendable {
        /// `hosts` (normalised host -> id), then `host_regex` with its `tenant` group.
        case host(exact: [String: String], regex: Regex?)
        /// A request header.
        case header(HeaderName)
    }

    public let source: Source
    /// The ids listed in `tenants`, made once; empty: any well-formed id.
    let known: [(bytes: [UInt8], id: String)]
    let knownSet: Set<String>
    public let setHeader: HeaderName
    public let unknownStatus: Int
    /// Set when `allow_unknown` is true.
    public let defaultTenant: String?
    let tenantGroup: Int?

    public init(source: Source, known: [String], setHeader: HeaderName, unknownStatus: Int, defaultTenant: String?) {
        self.source = source
        self.known = known.map { (Array($0.utf8), $0) }
        self.knownSet = Set(known)
        self.setHeader = setHeader
        self.unknownStatus = unknownStatus
        self.defaultTenant = defaultTenant
        if case .host(_, let r?) = source { tenantGroup = r.captureNames["tenant"] } else { tenantGroup = nil }
    }

    public var kind: String { TenantFactory.name }

    /// How a tenant was found, or why none was: made into text only for a trace.
    enum Via: CustomStringConvertible {
        case text(StaticString)
        /// `host_regex` matched an id that is not well formed, or not in `tenants`.
        case regexRejected(id: String, notInTenants: Bool)
        case noHeader(HeaderName)

        var description: String {
            switch self {
            case .text(let s): return s.description
            case .regexRejected(let id, let notInTenants):
                return "host_regex matched '\(id)', " + (notInTenants ? "not in tenants" : "not a tenant id")
            case .noHeader(let name): return "no \(name.name) header"
            }
        }
    }

    /// The tenant of this request and how it was found; nil id when unknown.
    func find(_ ctx: RequestContext) -> (id: String?, looked: String, via: Via) {
        switch source {
        case .host(let exact, let regex):
            let host = ctx.head.host
            if let id = exact[host] { return (id, host, .text("hosts")) }
            if let r = regex, let g = tenantGroup, let caps = r.captures(host), g < caps.count, let id = caps[g] {
                if knownSet.isEmpty ? isTenantID(id.utf8) : knownSet.contains(id) { return (id, host, .text("host_regex")) }
                return (nil, host, .regexRejected(id: id, notInTenants: !knownSet.isEmpty))
            }
            return (nil, host, .text(regex == nil ? "not in hosts" : "not in hosts, no host_regex match"))
        case .header(let name):
            let looked = ctx.isTracing ? "\(name.name): \(ctx.head.fields.first(name) ?? "(none)")" : ""
            if let slot = ctx.head.fields.firstSlot(name) {
                if !known.isEmpty {
                    let hit = ctx.head.fields.withValueBytes(ofSlot: slot) { v in known.first { $0.bytes.elementsEqual(v) } }
                    return (hit?.id, looked, .text(hit == nil ? "not in tenants" : "header"))
                }
                let ok = ctx.head.fields.withValueBytes(ofSlot: slot) { isTenantID($0) }
                return ok ? (ctx.head.fields.value(ofSlot: slot), looked, .text("header")) : (nil, looked, .text("not a tenant id"))
            }
            if let v = ctx.head.fields.first(name) {  // added by an earlier stage
                let ok = known.isEmpty ? isTenantID(v.utf8) : knownSet.contains(v)
                return ok ? (v, looked, .text("header")) : (nil, looked, .text(known.isEmpty ? "not a tenant id" : "not in tenants"))
            }
            return (nil, looked, .noHeader(name))
        }
    }

    /// What the trace shows as looked at: `host 'x'`, or the header line.
    func shown(_ looked: String) -> String {
        if case .host = source { return "host '\(looked)'" }
        return looked
    }

    public func request(_ ctx: RequestContext) -> Verdict {
        let (found, looked, via) = find(ctx)
        if let id = found ?? defaultTenant {
            ctx.head.fields.set(setHeader, id)
            ctx.record(kind, looked: shown(looked), decided: "tenant \(id), set \(setHeader.name): \(id)",
                       why: found != nil ? "from \(via)" : "\(via); allow_unknown, so default_tenant")
            return .next
        }
        ctx.record(kind, looked: shown(looked), decided: "refuse \(unknownStatus)", why: "unknown tenant: \(via)")
        if ctx.requestID.isEmpty { ctx.requestID = RequestID.generate() }
        let detail: String
        if case .header(let n) = source { detail = "no known tenant in \(n.name)" } else { detail = "no tenant serves host '\(ctx.head.host)'" }
        return .respond(LocalResponse.error(unknownStatus, "unknown_tenant", requestID: ctx.requestID, detail: detail))
    }
}
