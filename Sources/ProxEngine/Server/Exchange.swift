import NIOCore
import ProxCore
import ProxUpstream

/// One request in flight on a client connection: its context, where its body is, which
/// upstream carries it, and what has been sent back. Lives on the connection's loop.
final class Exchange {
    enum Phase {
        /// Routing and the chain are running (or a stage is suspended).
        case chain
        /// Waiting for an upstream connection.
        case connecting
        /// The request head went upstream; waiting for the response head.
        case awaitingResponse
        /// The response head went to the client; its body is streaming.
        case streamingResponse
        /// The response is complete (or abandoned).
        case done
    }

    let ctx: RequestContext
    let start: NIODeadline
    var phase = Phase.chain
    /// The parser delivered the request's end.
    var requestEnded: Bool
    var bodyBytes: Int64 = 0
    /// Body received before an upstream was attached.
    var pending: [ByteBuffer] = []
    var pendingBytes = 0
    var pool: PoolSpec?
    /// The pool's balancer and endpoint connections on this loop, looked up once per request.
    var runtime: PoolRuntime?
    var endpointIndex = -1
    var upstream: UpstreamConnection?
    var upstreamReused = false
    var attempts = 0
    /// The serialized upstream head, kept for a retry on a fresh connection.
    var upstreamHead = ByteBuffer()
    /// How the request body goes upstream.
    var upstreamChunked = false
    /// The request can be retried on another connection (idempotent, no body).
    var retryable = false
    var responseStarted = false
    /// How the response body goes to the client.
    var clientChunked = false
    var clientNoBody = false
    var keepAlive = true
    var status = 0
    var bytesOut: Int64 = 0
    var upstreamSentAt: NIODeadline?
    /// When the whole request (head and body) had gone upstream: the response head timeout
    /// counts from here, so a long upload is not mistaken for a silent upstream.
    var requestSentAt: NIODeadline?
    var upstreamDoneAt: NIODeadline?
    var lastClientActivity: NIODeadline
    var lastUpstreamActivity: NIODeadline
    var errorCategory = ""
    /// The response head, held back briefly so a small first body piece can join it in one
    /// write (one trip through the channel pipeline instead of two).
    var pendingClientHead: ByteBuffer?

    init(ctx: RequestContext, now: NIODeadline) {
        self.ctx = ctx
        self.start = now
        self.lastClientActivity = now
        self.lastUpstreamActivity = now
        self.requestEnded = ctx.head.framing == .none
    }
}
