import ProxCore

/// Applies precompiled header edits to the request (upstream-bound) and the response.
public struct HeadersStage: Stage {
    public enum Edit: Sendable {
        case remove(HeaderName)
        case set(HeaderName, Template)
        case add(HeaderName, Template)

        func apply(_ fields: inout HeaderFields, _ ctx: RequestContext) {
            switch self {
            case .remove(let n): fields.remove(n)
            case .set(let n, let t): fields.set(n, t.render(ctx))
            case .add(let n, let t): fields.add(n, t.render(ctx))
            }
        }

        var summary: String {
            switch self {
            case .remove(let n): return "remove \(n.name)"
            case .set(let n, let t): return "set \(n.name): \(t.source)"
            case .add(let n, let t): return "add \(n.name): \(t.source)"
            }
        }
    }

    public let requestEdits: [Edit]
    public let responseEdits: [Edit]

    public init(requestEdits: [Edit], responseEdits: [Edit]) {
        self.requestEdits = requestEdits
        self.responseEdits = responseEdits
    }

    public var kind: String { HeadersFactory.name }
    public var handlesResponse: Bool { !responseEdits.isEmpty }

    public func request(_ ctx: RequestContext) -> Verdict {
        for e in requestEdits { e.apply(&ctx.head.fields, ctx) }
        if !requestEdits.isEmpty {
            ctx.record(kind, looked: "request headers", decided: requestEdits.map(\.summary).joined(separator: "; "),
                       why: "the filter's request edits")
        }
        return .next
    }

    public func response(_ ctx: RequestContext, _ head: inout ResponseHead) {
        for e in responseEdits { e.apply(&head.fields, ctx) }
        ctx.record(kind, looked: "response headers", decided: responseEdits.map(\.summary).joined(separator: "; "),
                   why: "the filter's response edits")
    }
}
