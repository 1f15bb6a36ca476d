import NIOCore
import ProxCore

/// Answers 413 `body_too_large` when Content-Length exceeds the limit (in the request-head
/// phase: no upstream is contacted), and otherwise in its request-body phase, as soon as the
/// body bytes received (`ctx.requestBodyBytes`) go over it: a chunked body, or one whose
/// Content-Length lied. Each `body_limit` stage of a route enforces its own limit.
public struct BodyLimitStage: Stage {
    public let maxBytes: Int64

    public init(maxBytes: Int64) {
        self.maxBytes = maxBytes
    }

    public var kind: String { BodyLimitFactory.name }
    public var phases: StagePhases { [.requestBody] }

    public func request(_ ctx: RequestContext) -> Verdict {
        switch ctx.head.framing {
        case .contentLength(let n) where n > maxBytes:
            ctx.record(kind, looked: "Content-Length: \(n)", decided: "refuse 413", why: "over max_bytes \(maxBytes)")
            if ctx.requestID.isEmpty { ctx.requestID = RequestID.generate() }
            return .respond(LocalResponse.error(413, "body_too_large", requestID: ctx.requestID,
                                                detail: "the body is \(n) bytes; the limit is \(maxBytes)"))
        case .contentLength(let n):
            ctx.record(kind, looked: "Content-Length: \(n)", decided: "pass", why: "within max_bytes \(maxBytes)")
        case .none:
            ctx.record(kind, looked: "no body", decided: "pass", why: "no body to limit")
        case .chunked, .untilClose:
            // Its size is known only at its end: the body phase counts it as it arrives.
            ctx.record(kind, looked: "chunked body: its size is unknown until its last chunk",
                       decided: "limit \(maxBytes) bytes, enforced as the body streams",
                       why: "the request-body phase counts the body as it arrives and refuses it with 413 past max_bytes")
        }
        return .next
    }

    public func requestBody(_ ctx: RequestContext, _ part: ByteBuffer) -> BodyVerdict {
        let seen = ctx.requestBodyBytes
        guard seen > maxBytes else { return .next }
        ctx.record(kind, looked: "\(seen) bytes of body received", decided: "refuse 413", why: "over max_bytes \(maxBytes)")
        if ctx.requestID.isEmpty { ctx.requestID = RequestID.generate() }
        return .respond(LocalResponse.error(413, "body_too_large", requestID: ctx.requestID,
                                            detail: "the body is over the limit of \(maxBytes) bytes"))
    }
}
