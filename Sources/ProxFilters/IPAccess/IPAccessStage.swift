import ProxCore

/// Refuses (403 `ip_denied`) a client in `deny`, or not in `allow` when `allow` is not empty.
public struct IPAccessStage: Stage {
    public let allow: [CIDR]
    public let deny: [CIDR]

    public init(allow: [CIDR], deny: [CIDR]) {
        self.allow = allow
        self.deny = deny
    }

    public var kind: String { IPAccessFactory.name }

    public func request(_ ctx: RequestContext) -> Verdict {
        let ip = ctx.client
        if let block = deny.first(where: { $0.contains(ip) }) {
            ctx.record(kind, looked: "client \(ctx.clientIPText)", decided: "refuse 403", why: "in deny \(block)")
            return .respond(refusal(ctx))
        }
        if allow.isEmpty {
            ctx.record(kind, looked: "client \(ctx.clientIPText)", decided: "allow", why: "not in deny")
            return .next
        }
        if let block = allow.first(where: { $0.contains(ip) }) {
            ctx.record(kind, looked: "client \(ctx.clientIPText)", decided: "allow", why: "in allow \(block)")
            return .next
        }
        ctx.record(kind, looked: "client \(ctx.clientIPText)", decided: "refuse 403",
                   why: "not in allow (\(allow.map(\.description).joined(separator: ", ")))")
        return .respond(refusal(ctx))
    }

    func refusal(_ ctx: RequestContext) -> LocalResponse {
        if ctx.requestID.isEmpty { ctx.requestID = RequestID.generate() }
        return LocalResponse.error(403, "ip_denied", requestID: ctx.requestID)
    }
}
