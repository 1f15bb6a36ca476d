import NIOCore
import ProxCore
import ProxUpstream

/// One request in flight on a client connection: the resources and accounting the handler
/// keeps for it (its context, body held while connecting, the upstream connection, buffers,
/// log figures). Where the request is in its lifecycle, and what happens next, is the
/// `ExchangeStateMachine`'s, not this object's. Lives on the connection's loop.
///
/// A finished exchange that nothing else holds serves the connection's next request: the
/// handler clears it (`reset`) and starts it again (`begin`) instead of making a new one.
final class Exchange {
    let ctx: RequestContext
    private(set) var start: NIODeadline
    /// Body received before an upstream was attached.
    var pending: [ByteBuffer] = []
    /// Bytes of body a stage asked to see before it runs (`FlowStep.readBody`), 0 if none.
    var bodyWanted = 0
    var pool: PoolSpec?
    /// The pool's balancer and endpoint connections on this loop, looked up once per request.
    var runtime: PoolRuntime?
    /// The endpoint counted in flight on the balancer, or -1.
    var endpointIndex = -1
    var upstream: UpstreamConnection?
    /// The serialized upstream head, kept for a retry on a fresh connection.
    var upstreamHead = ByteBuffer()
    /// The response head, held back briefly so a small first body piece can join it in one
    /// write (one trip through the channel pipeline instead of two).
    var pendingClientHead: ByteBuffer?
    /// The later stage phases the route's chain uses, read from the route once (when the
    /// response head is handled, or at the end): checking it per body piece costs no retain.
    var phases: StagePhases?
    /// Set once the exchange was logged and its resources given back.
    var finished = false
    // For the access log.
    var status = 0
    var bytesOut: Int64 = 0
    var upstreamSentAt: NIODeadline?
    var upstreamDoneAt: NIODeadline?
    var errorCategory = ""
    /// Set when a `101` made the exchange a tunnel, once the tunnel ended: its figures.
    var tunnel: ByteRelay.Stats?
    /// The connection's `X-Forwarded-For` and `-Proto` lines (`RequestFlow.forwardingLines`),
    /// made on the first request proxied and kept across `reset`: they are the connection's.
    var forwarding: HeaderLines?

    init(ctx: RequestContext, now: NIODeadline) {
        self.ctx = ctx
        self.start = now
    }

    /// Whether nothing but this exchange holds its context: no stage, callback or test kept it.
    func holdsContextAlone() -> Bool {
        // `isKnownUniquelyReferenced` takes a variable: a copy of `ctx` would count itself, and a
        // `var ctx` costs a retain at uses of it the compiler cannot prove safe. Here the
        // variable is the reference's own bits, lent without a retain.
        var ref = Unmanaged.passUnretained(ctx)
        return withUnsafeMutablePointer(to: &ref) {
            $0.withMemoryRebound(to: RequestContext.self, capacity: 1) { isKnownUniquelyReferenced(&$0.pointee) }
        }
    }

    /// Clears this exchange, finished, and its context for the next request on the connection:
    /// every field back to what `init` gives it (`emptyBuffer` is an empty buffer), so a kept
    /// exchange holds nothing of the finished request (no body pieces, pool, upstream or
    /// buffers). `finished` stays set until `begin`: a late call still finds it finished. Only
    /// when the handler holds the context alone (`holdsContextAlone`).
    ///
    /// A field added to this class is reset here (`ExchangeReuseTests` lists every field, and
    /// fails until a new one is listed).
    func reset(emptyBuffer: ByteBuffer) {
        ctx.reset(emptyBytes: emptyBuffer)
        if !pending.isEmpty { pending = [] }
        bodyWanted = 0
        pool = nil
        runtime = nil
        endpointIndex = -1
        upstream = nil
        if upstreamHead.capacity > 0 { upstreamHead = emptyBuffer }
        pendingClientHead = nil
        phases = nil
        status = 0
        bytesOut = 0
        upstreamSentAt = nil
        upstreamDoneAt = nil
        errorCategory = ""
        tunnel = nil
    }

    /// Starts the next request on an exchange `reset` cleared, as `init` (and the context's
    /// `init`) would.
    func begin(head: consuming RequestHead, snapshot: consuming Snapshot, listener: consuming ListenerSpec, now: NIODeadline) {
        ctx.begin(head: head, snapshot: snapshot, listener: listener)
        start = now
        finished = false
    }
}
