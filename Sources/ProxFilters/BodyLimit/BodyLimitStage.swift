import ProxCore

/// Answers 413 `body_too_large` when Content-Length exceeds the limit; otherwise lowers
/// `ctx.requestBodyLimit` so the engine enforces it while streaming (chunked bodies).
public struct BodyLimitStage: Stage {
    public let maxBytes: Int64

    public init(maxBytes: Int64) {
        self.maxBytes = maxBytes
    }

    public var kind: String { BodyLimitFactory.name }

    public func request(_ ctx: RequestContext) -> Verdict {
        if case .contentLength(let n) = ctx.head.framing, n > maxBytes {
            ctx.record(kind, looked: "Content-Length: \(n)", decided: "refuse 413", why: "over max_bytes \(maxBytes)")
            if ctx.requestID.isEmpty { ctx.requestID = RequestID.generate() }
            return .respond(LocalResponse.error(413, "body_too_large", requestID: ctx.requestID,
                                                detail: "the body is \(n) bytes; the limit is \(maxBytes)"))
        }
        let limit = min(ctx.requestBodyLimit ?? maxBytes, maxBytes)
        ctx.requestBodyLimit = limit
        ctx.record(kind, looked: describe(ctx.head.framing), decided: "pass, body limit \(limit) bytes",
                   why: limit < maxBytes ? "an earlier limit is smaller" : "within max_bytes \(maxBytes)")
        return .next
    }

    func describe(_ f: BodyFraming) -> String {
        switch f {
        case .none: return "no body"
        case .contentLength(let n): return "Content-Length: \(n)"
        case .chunked: return "chunked body"
        case .untilClose: return "body until close"
        }
    }
}
