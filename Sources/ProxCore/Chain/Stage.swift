import NIOCore

/// What the chain does after a stage looked at a request.
public enum Verdict {
    /// Run the next stage; after the last stage, carry out the route's action.
    case next
    /// Stop the chain and answer the client with this response. The stages that already ran
    /// still see the response in `response(_:_:)`, in reverse order; the upstream is not contacted.
    case respond(LocalResponse)
    /// The stage must wait (external call, queue). The chain resumes on the same event loop
    /// with the verdict the future yields; a failed future answers 500 `stage_failed`.
    case suspend(EventLoopFuture<Verdict>)
}

/// A response made by Prox itself (a `respond` action, a redirect, an error, a stage's refusal).
public struct LocalResponse: Sendable {
    public var status: Int
    public var headers: [(name: HeaderName, value: String)]
    public var body: String
    /// A short machine-readable reason (`upstream_connect_failed`, `ip_denied`, ...), sent as
    /// `X-Prox-Error` and logged. Empty for responses a config asked for.
    public var category: String
    /// What went wrong in more words, for the error log. Sent to the client only for its own
    /// mistakes (4xx); a 5xx never shows the client upstream addresses or system errors.
    public var detail: String

    public init(status: Int, headers: [(name: HeaderName, value: String)] = [], body: String = "", category: String = "",
                detail: String = "") {
        self.status = status
        self.headers = headers
        self.body = body
        self.category = category
        self.detail = detail
    }

    /// An error answer: plain text naming the category and the request id.
    public static func error(_ status: Int, _ category: String, requestID: String, detail: String = "") -> LocalResponse {
        var text = "\(status) \(reasonPhrase(status)): \(category)"
        if !detail.isEmpty && status < 500 { text += " (\(detail))" }
        if !requestID.isEmpty { text += "\nrequest id: \(requestID)" }
        text += "\n"
        return LocalResponse(status: status, headers: [(.contentType, "text/plain; charset=utf-8")], body: text, category: category,
                             detail: detail)
    }
}

/// One step of a route's chain: an immutable value built by the config compiler and shared by
/// every event loop. Per-request state lives in the `RequestContext`, never in the stage.
///
/// Both methods run on the request's event loop.
public protocol Stage: Sendable {
    /// The filter type (`request_id`, `headers`, ...), shown in traces and logs.
    var kind: String { get }
    /// Whether `response(_:_:)` does anything; the chain skips stages that answer false.
    var handlesResponse: Bool { get }
    /// Looks at (and may edit) the request.
    func request(_ ctx: RequestContext) -> Verdict
    /// Looks at (and may edit) the response head before it is written to the client.
    func response(_ ctx: RequestContext, _ head: inout ResponseHead)
}

extension Stage {
    public var handlesResponse: Bool { false }
    public func response(_ ctx: RequestContext, _ head: inout ResponseHead) {}
}

/// A route's stages in order, with the response-side ones precomputed.
public struct RouteChain: Sendable {
    public let stages: [any Stage]
    /// Indices into `stages` of the stages that handle responses.
    public let responseStages: [Int]

    public init(_ stages: [any Stage]) {
        self.stages = stages
        self.responseStages = stages.indices.filter { stages[$0].handlesResponse }
    }

    /// Runs the request side from stage `start`. Returns the verdict that stopped the run
    /// (`.next` when every stage passed) and the index of the stage after the last one run.
    @inlinable
    public func runRequest(_ ctx: RequestContext, from start: Int = 0) -> (Verdict, Int) {
        var i = start
        while i < stages.count {
            let v = stages[i].request(ctx)
            i += 1
            switch v {
            case .next: continue
            case .respond, .suspend: return (v, i)
            }
        }
        return (.next, i)
    }

    /// Runs the response side, in reverse, over the stages that ran (`ranCount` of them).
    @inlinable
    public func runResponse(_ ctx: RequestContext, _ head: inout ResponseHead, ranCount: Int) {
        var j = responseStages.count - 1
        while j >= 0 {
            let i = responseStages[j]
            if i < ranCount { stages[i].response(ctx, &head) }
            j -= 1
        }
    }
}
