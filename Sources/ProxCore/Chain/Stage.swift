import NIOCore

/// What the chain does after a stage looked at a request.
public enum Verdict: Sendable {
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

/// What a stage's request-body phase decided about one piece of the body.
public enum BodyVerdict {
    /// Let the piece through.
    case next
    /// Refuse the body: the client gets this response if the response has not started (the
    /// connection then closes: the rest of the body is unread), otherwise the exchange is cut.
    case respond(LocalResponse)
}

/// The phases a stage takes part in besides the request head (which every stage sees). The
/// chain precomputes, per phase, which stages run it, so a route whose stages use no body or
/// completion phase pays nothing for those phases.
public struct StagePhases: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// `requestBody(_:_:)`: each piece of the request body, as it streams.
    public static let requestBody = StagePhases(rawValue: 1 << 0)
    /// `response(_:_:)`: the response head, before it is written to the client.
    public static let responseHead = StagePhases(rawValue: 1 << 1)
    /// `responseBody(_:_:)`: each piece of an upstream response body, as it streams.
    public static let responseBody = StagePhases(rawValue: 1 << 2)
    /// `completed(_:_:)`: once the exchange is over (answered, proxied, cut or abandoned).
    public static let completion = StagePhases(rawValue: 1 << 3)
}

/// How an exchange ended, for a stage's completion phase (logging, metrics): the figures the
/// access log gets.
public struct ExchangeSummary: Sendable {
    /// The status the client got (499 when it went away first).
    public var status: Int
    /// Request body bytes received, response bytes sent.
    public var bytesIn: Int64
    public var bytesOut: Int64
    /// From the request head to the end, and from the request sent upstream to the upstream's
    /// answer (-1 when there was no upstream).
    public var durationMicros: Int64
    public var upstreamMicros: Int64
    /// The failure category (`upstream_timeout`, ...), empty on success.
    public var error: String

    public init(status: Int, bytesIn: Int64, bytesOut: Int64, durationMicros: Int64, upstreamMicros: Int64, error: String) {
        self.status = status
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.durationMicros = durationMicros
        self.upstreamMicros = upstreamMicros
        self.error = error
    }
}

/// One step of a route's chain: an immutable value built by the config compiler and shared by
/// every event loop. Per-request state lives in the `RequestContext` (a stage's own in typed
/// slots: `ctx[slot: Key.self]`), never in the stage.
///
/// Every phase has a default that does nothing; a stage implements the ones it needs and names
/// them in `phases`. All run on the request's event loop. The body and completion phases run
/// only for stages whose request phase ran (in order; the response side in reverse).
public protocol Stage: Sendable {
    /// The filter type (`request_id`, `headers`, ...), shown in traces and logs.
    var kind: String { get }
    /// The phases this stage implements besides `request`. Default: `.responseHead` when
    /// `handlesResponse` is true.
    var phases: StagePhases { get }
    /// Whether `response(_:_:)` does anything (the older way to say `.responseHead`).
    var handlesResponse: Bool { get }
    /// Bytes of the request body this stage must have before its `request` runs; 0 (the
    /// default): none, the stage sees the head as soon as it arrives. When some stage asks, the
    /// engine holds the chain before that stage, reads the body up to the largest amount asked
    /// (answering `100 Continue` itself when the client waits for it) and offers it as
    /// `ctx.requestBody`; the whole body still goes upstream, streamed as usual.
    var requestBodyBuffer: Int { get }
    /// Looks at (and may edit) the request head.
    func request(_ ctx: RequestContext) -> Verdict
    /// Looks at one piece of the request body as it streams.
    func requestBody(_ ctx: RequestContext, _ part: ByteBuffer) -> BodyVerdict
    /// Looks at (and may edit) the response head before it is written to the client.
    func response(_ ctx: RequestContext, _ head: inout ResponseHead)
    /// Looks at one piece of an upstream response body as it streams to the client.
    func responseBody(_ ctx: RequestContext, _ part: ByteBuffer)
    /// The exchange is over.
    func completed(_ ctx: RequestContext, _ summary: ExchangeSummary)
}

extension Stage {
    public var handlesResponse: Bool { false }
    public var requestBodyBuffer: Int { 0 }
    public var phases: StagePhases { handlesResponse ? [.responseHead] : [] }
    public func requestBody(_ ctx: RequestContext, _ part: ByteBuffer) -> BodyVerdict { .next }
    public func response(_ ctx: RequestContext, _ head: inout ResponseHead) {}
    public func responseBody(_ ctx: RequestContext, _ part: ByteBuffer) {}
    public func completed(_ ctx: RequestContext, _ summary: ExchangeSummary) {}
}

/// Calls one stage's phases, for the chain's loops. A class per stage type, its stage stored
/// as its concrete type: calling a phase on a stage read out of an array of `any Stage` copied
/// the stage out of its existential box first (the value witnesses' copy and destroy, and a
/// retain and release of what it holds), on every phase of every request.
@usableFromInline
class StageCaller: @unchecked Sendable {
    @usableFromInline func request(_ ctx: RequestContext) -> Verdict { .next }
    @usableFromInline func requestBody(_ ctx: RequestContext, _ part: ByteBuffer) -> BodyVerdict { .next }
    @usableFromInline func response(_ ctx: RequestContext, _ head: inout ResponseHead) {}
    @usableFromInline func responseBody(_ ctx: RequestContext, _ part: ByteBuffer) {}
    @usableFromInline func completed(_ ctx: RequestContext, _ summary: ExchangeSummary) {}

    static func make(_ stage: any Stage) -> StageCaller {
        func typed<S: Stage>(_ s: S) -> StageCaller { TypedStageCaller(s) }
        return typed(stage)
    }
}

final class TypedStageCaller<S: Stage>: StageCaller, @unchecked Sendable {
    let stage: S
    init(_ stage: S) { self.stage = stage }
    override func request(_ ctx: RequestContext) -> Verdict { stage.request(ctx) }
    override func requestBody(_ ctx: RequestContext, _ part: ByteBuffer) -> BodyVerdict { stage.requestBody(ctx, part) }
    override func response(_ ctx: RequestContext, _ head: inout ResponseHead) { stage.response(ctx, &head) }
    override func responseBody(_ ctx: RequestContext, _ part: ByteBuffer) { stage.responseBody(ctx, part) }
    override func completed(_ ctx: RequestContext, _ summary: ExchangeSummary) { stage.completed(ctx, summary) }
}

/// A route's stages in order, with the response-side ones precomputed.
///
/// A class: the engine reaches it through the route in every phase of every request, and a
/// struct read out of the route was copied, its arrays retained and released each time.
public final class RouteChain: Sendable {
    public let stages: [any Stage]
    /// `stages`, each behind its `StageCaller`, which this array owns.
    let owned: [StageCaller]
    /// The same callers, lent: what the phases call. Read out of an array of references, each
    /// caller was retained and released around its call; these are plain bits, and `owned`
    /// keeps every caller alive as long as the chain.
    @usableFromInline let callers: [Unmanaged<StageCaller>]
    /// Indices into `stages` of the stages that handle responses.
    public let responseStages: [Int]

    /// The later phases some stage of this chain takes part in: the engine reads it once per
    /// request (`Exchange.phases`) and skips the phases no stage uses.
    public let phasesUsed: StagePhases
    /// Which stages run the body and completion phases; nil when none does.
    public let later: LaterPhaseStages?
    /// The index of the first stage that needs the request body before it runs
    /// (`requestBodyBuffer > 0`), or `stages.count` when none does; and the most body any stage
    /// from there on asked for. Plain integers: the hot path reads one comparison.
    public let bodyBufferAt: Int
    public let bodyBufferBytes: Int

    public init(_ stages: [any Stage]) {
        self.stages = stages
        self.owned = stages.map(StageCaller.make)
        self.callers = owned.map { Unmanaged.passUnretained($0) }
        self.bodyBufferAt = stages.firstIndex { $0.requestBodyBuffer > 0 } ?? stages.count
        self.bodyBufferBytes = stages.map(\.requestBodyBuffer).max() ?? 0
        let phases = stages.map { $0.phases.union($0.handlesResponse ? .responseHead : []) }
        self.responseStages = stages.indices.filter { phases[$0].contains(.responseHead) }
        self.phasesUsed = phases.reduce(into: StagePhases()) { $0.formUnion($1) }
        if phasesUsed.isDisjoint(with: [.requestBody, .responseBody, .completion]) {
            self.later = nil
        } else {
            self.later = LaterPhaseStages(requestBody: stages.indices.filter { phases[$0].contains(.requestBody) },
                                          responseBody: stages.indices.filter { phases[$0].contains(.responseBody) },
                                          completion: stages.indices.filter { phases[$0].contains(.completion) })
        }
    }

    public var requestBodyStages: [Int] { later?.requestBody ?? [] }
    public var responseBodyStages: [Int] { later?.responseBody ?? [] }
    public var completionStages: [Int] { later?.completion ?? [] }

    /// Runs the request-body phase, in order, over the stages that ran (`ranCount` of them);
    /// the first refusal stops it. Counts the piece into `ctx.requestBodyBytes` first.
    @inlinable
    public func runRequestBody(_ ctx: RequestContext, _ part: ByteBuffer, ranCount: Int) -> BodyVerdict {
        guard let later else { return .next }
        ctx.bodyBytesSeen += Int64(part.readableBytes)
        for i in later.requestBody where i < ranCount {
            if case .respond(let r) = callers[i]._withUnsafeGuaranteedRef { $0.requestBody(ctx, part) } { return .respond(r) }
        }
        return .next
    }

    /// Runs the response-body phase, in reverse, over the stages that ran.
    @inlinable
    public func runResponseBody(_ ctx: RequestContext, _ part: ByteBuffer, ranCount: Int) {
        guard let list = later?.responseBody else { return }
        var j = list.count - 1
        while j >= 0 {
            let i = list[j]
            if i < ranCount { callers[i]._withUnsafeGuaranteedRef { $0.responseBody(ctx, part) } }
            j -= 1
        }
    }

    /// Runs the completion phase, in reverse, over the stages that ran.
    @inlinable
    public func runCompleted(_ ctx: RequestContext, _ summary: ExchangeSummary, ranCount: Int) {
        guard let list = later?.completion else { return }
        var j = list.count - 1
        while j >= 0 {
            let i = list[j]
            if i < ranCount { callers[i]._withUnsafeGuaranteedRef { $0.completed(ctx, summary) } }
            j -= 1
        }
    }

    /// Runs the request side from stage `start`. Returns the verdict that stopped the run
    /// (`.next` when every stage passed) and the index of the stage after the last one run.
    @inlinable
    public func runRequest(_ ctx: RequestContext, from start: Int = 0) -> (Verdict, Int) {
        var i = start
        while i < callers.count {
            let v = callers[i]._withUnsafeGuaranteedRef { $0.request(ctx) }
            i += 1
            switch v {
            case .next: continue
            case .respond, .suspend: return (v, i)
            }
        }
        return (.next, i)
    }

    /// `runRequest`, stopping before stage `end` (the first that needs the body). A copy of the
    /// loop above on purpose: that one is every request's, and one shared body changed how it inlines.
    @inlinable
    public func runRequest(_ ctx: RequestContext, from start: Int, upTo end: Int) -> (Verdict, Int) {
        var i = start
        while i < min(end, callers.count) {
            let v = callers[i]._withUnsafeGuaranteedRef { $0.request(ctx) }
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
            if i < ranCount { callers[i]._withUnsafeGuaranteedRef { $0.response(ctx, &head) } }
            j -= 1
        }
    }
}

/// The stages of a chain that run the body and completion phases, by index.
public final class LaterPhaseStages: Sendable {
    public let requestBody: [Int]
    public let responseBody: [Int]
    public let completion: [Int]

    init(requestBody: [Int], responseBody: [Int], completion: [Int]) {
        self.requestBody = requestBody
        self.responseBody = responseBody
        self.completion = completion
    }
}
