import ProxCore

/// Sets `ctx.requestID`: the client's id when trusted and valid, else a new one. Writes it on
/// the request sent upstream (replacing a client's untrusted one) and on the response.
public struct RequestIDStage: Stage {
    public let header: HeaderName
    public let trustIncoming: Bool
    public let setResponseHeader: Bool

    public init(header: HeaderName, trustIncoming: Bool, setResponseHeader: Bool) {
        self.header = header
        self.trustIncoming = trustIncoming
        self.setResponseHeader = setResponseHeader
    }

    public var kind: String { RequestIDFactory.name }
    public var handlesResponse: Bool { setResponseHeader }

    public func request(_ ctx: RequestContext) -> Verdict {
        // The incoming value is needed to keep it, or to explain the decision in a trace.
        let header = self.header
        let incoming = trustIncoming || ctx.isTracing ? ctx.withHead { $0.fields.first(header) } : nil
        if trustIncoming, let v = incoming, RequestID.isValid(v) {
            ctx.requestID = v
            ctx.record(kind, looked: "\(header.name): \(v)", decided: "keep \(v)", why: "trust_incoming and the id is valid")
            return .next
        }
        // Kept as its bits and written as bytes: no `String` unless something reads one.
        let id = RequestID.Generated.next()
        ctx.generatedRequestID = id
        id.withDigits { ctx.head.fields.set(header, cleanBytes: $0) }
        ctx.record(kind, looked: incoming.map { "\(header.name): \($0)" } ?? "no \(header.name)",
                   decided: "generate \(id.text)",
                   why: incoming == nil ? "the request has none"
                       : trustIncoming ? "the incoming id is not valid" : "incoming ids are not trusted")
        return .next
    }

    public func response(_ ctx: RequestContext, _ head: inout ResponseHead) {
        ctx.writeRequestID(header, into: &head.fields, replacing: true)
    }
}
