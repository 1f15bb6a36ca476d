import NIOCore
import ProxCore
import ProxUpstream

/// One request in flight on a client connection: the resources and accounting the handler
/// keeps for it (its context, body held while connecting, the upstream connection, buffers,
/// log figures). Where the request is in its lifecycle, and what happens next, is the
/// `ExchangeStateMachine`'s, not this object's. Lives on the connection's loop.
final class Exchange {
    let ctx: RequestContext
    let start: NIODeadline
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

    init(ctx: RequestContext, now: NIODeadline) {
        self.ctx = ctx
        self.start = now
    }
}
