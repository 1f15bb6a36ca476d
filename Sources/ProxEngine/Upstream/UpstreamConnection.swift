import NIOCore
import ProxCore

/// Receives what an upstream connection says about the request it is carrying. Implemented by
/// the client connection handler; all calls happen on the shared event loop.
protocol UpstreamDelegate: AnyObject {
    func upstreamInformational(_ c: UpstreamConnection, _ head: ResponseHead)
    func upstreamHead(_ c: UpstreamConnection, _ head: consuming ResponseHead)
    func upstreamBody(_ c: UpstreamConnection, _ body: ByteBuffer)
    func upstreamEnd(_ c: UpstreamConnection)
    func upstreamFailed(_ c: UpstreamConnection, _ error: HTTP1ParseError)
    /// The connection closed before the response ended. `receivedAny` tells whether any byte of
    /// a response arrived (a stale pooled connection closes before any).
    func upstreamClosed(_ c: UpstreamConnection, receivedAny: Bool)
    func upstreamReadComplete(_ c: UpstreamConnection)
    func upstreamWritabilityChanged(_ c: UpstreamConnection, writable: Bool)
}

/// One pooled connection to an upstream endpoint: the handler at the end of its pipeline, with
/// the response framing state machine. Thin by design: it frames, the delegate decides.
final class UpstreamConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let endpoint: EndpointSpec
    /// The endpoint's connection state on this loop (idle list, open count).
    let connections: EndpointConnections
    unowned let upstreams: LoopUpstreamConnections
    /// Still counted in `connections.open`.
    var counted = true
    /// The channel is connected and not yet inactive; tracked here because asking the channel
    /// costs several retains inside SwiftNIO.
    private var active = false
    /// The connection's I/O: the channel context on SwiftNIO, the socket on io_uring.
    private var io: (any ConnectionIO)?
    /// The channel context on SwiftNIO (nil on io_uring): a tunnel takes the channel.
    private var nio: ChannelHandlerContext?
    private var parser = HTTP1ResponseParser(requestMethod: .get)
    /// Strong, and cleared when the exchange ends (`finish`, `close`, channel inactive): a weak
    /// reference would put the client handler's reference count in a side table.
    var delegate: (any UpstreamDelegate)?
    private var inbox = ByteBuffer()
    private(set) var closing = false
    /// True while a request is outstanding on this connection.
    private(set) var busy = false
    private var receivedAny = false
    /// The upstream said it keeps the connection open after this response.
    private(set) var upstreamKeepAlive = true
    private(set) var exchanges = 0
    /// The exchange's attempt number this connection carries (events are matched against it).
    private(set) var attempt = 0
    /// The TLS handshake's outcome, from the channel initializer until `connect` takes it.
    var handshake: EventLoopFuture<Void>?
    /// The pool's TLS (nil: cleartext), to explain an error TLS raises after the handshake.
    var tls: (any UpstreamTLS)?
    /// Why TLS closed the connection (an alert from the upstream), said plainly.
    private(set) var tlsFailure: String?

    init(endpoint: EndpointSpec, connections: EndpointConnections, upstreams: LoopUpstreamConnections) {
        self.endpoint = endpoint
        self.connections = connections
        self.upstreams = upstreams
    }

    var isUsable: Bool {
        active && !closing && !busy && upstreamKeepAlive && inbox.readableBytes == 0
    }

    /// Kept from writability events: asking the channel each request costs retains in SwiftNIO.
    private(set) var isWritable = false

    /// Starts an exchange: responses are framed for `method` (and, with `upgrade`, a `101` is
    /// the upgrade's answer) and go to `delegate`.
    func begin(method: HTTPMethod, attempt: Int, upgrade: Bool = false, delegate: any UpstreamDelegate) {
        parser.reset(requestMethod: method, upgrade: upgrade)
        self.attempt = attempt
        self.delegate = delegate
        busy = true
        receivedAny = false
        exchanges += 1
    }

    /// Hands a delivered response head's arrays back to the parser, for the next response.
    func recycle(_ fields: inout HeaderFields) { parser.recycle(&fields) }

    /// Ends the exchange (the response ended, or the request was abandoned).
    func finish() {
        delegate = nil
        busy = false
    }

    func write(_ buffer: ByteBuffer) {
        // Straight to SwiftNIO's context when there is one: a direct call, not a witness-table one.
        if let c = nio { c.write(NIOAny(buffer), promise: nil) } else { io?.send(buffer) }
    }

    func flush() {
        if let c = nio { c.flush() } else { io?.flush() }
    }

    /// One trip through the pipeline for a write that is also the last before a flush.
    func writeAndFlush(_ buffer: ByteBuffer) {
        if let c = nio { c.writeAndFlush(NIOAny(buffer), promise: nil) } else { io?.sendAndFlush(buffer) }
    }

    private var autoReadOff = false

    /// Stops or resumes reading from the upstream (backpressure from a slow client). Changes the
    /// channel option only when the state changes: setting it costs a dynamic cast and an
    /// epoll update.
    func setAutoRead(_ on: Bool) {
        guard autoReadOff == on else { return }
        autoReadOff = !on
        io?.setReading(on)
    }

    /// The upstream answered an upgrade with `101`: the connection leaves HTTP for good. Takes
    /// this handler out of the pipeline (a byte relay takes its place) and returns the channel
    /// with the bytes that came after the `101` head. The connection is never pooled again, and
    /// stays counted open for its endpoint until `tunnelClosed()`. Call from the delegate's
    /// `upstreamHead`, on the loop.
    func detachForTunnel() -> (channel: any Channel, rest: ByteBuffer)? {
        guard let context = nio, active else { return nil }
        let channel = context.channel
        let rest = inbox
        inbox = upstreams.emptyBuffer
        delegate = nil
        closing = true
        upstreamKeepAlive = false
        setAutoRead(true)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        return (channel, rest)
    }

    #if os(Linux)
    /// `detachForTunnel` on the io_uring engine: the socket, and the bytes after the `101` head.
    func detachSocketForTunnel() -> (socket: URingSocket, rest: ByteBuffer)? {
        guard let socket = io as? URingSocket, active, !socket.isClosed else { return nil }
        let rest = inbox
        inbox = upstreams.emptyBuffer
        delegate = nil
        closing = true
        upstreamKeepAlive = false
        io = nil
        return (socket, rest)
    }
    #endif

    /// The tunnel this connection became has closed: it no longer counts as open.
    func tunnelClosed() { upstreams.closed(self) }

    func close() {
        guard !closing else { return }
        closing = true
        delegate = nil
        io?.close()
    }

    // MARK: ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        nio = context
        io = context
        active = context.channel.isActive
        isWritable = context.channel.isWritable
    }

    /// The engine may read again (io_uring: after each receive, while reading is on).
    func readMore() { io?.read() }

    /// The io_uring engine's connection is open on `io`.
    func attach(io: any ConnectionIO) {
        self.io = io
        active = true
        isWritable = io.isWritable
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // The context holds this handler strongly: keeping it would be a cycle (issue 6).
        io = nil
        nio = nil
        delegate = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        active = true
        isWritable = context.channel.isWritable
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) { connectionClosed() }

    /// The connection closed (the upstream, an error, or Prox).
    func connectionClosed() {
        active = false
        isWritable = false
        closing = true
        upstreams.closed(self)
        if let d = delegate {
            delegate = nil
            if busy, let ev = parser.endOfInput() {
                // A body delimited by the close ends here.
                switch ev {
                case .end:
                    delegate = d
                    deliver(.end, to: d)
                    return
                default: break
                }
            }
            d.upstreamClosed(self, receivedAny: receivedAny)
        }
        io = nil
        nio = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { received(unwrapInboundIn(data)) }

    /// Bytes from the upstream.
    /// Consuming, as `ClientConnectionHandler.received`.
    func received(_ data: consuming ByteBuffer) {
        guard var d = delegate else {
            // Bytes while idle: the upstream is not speaking HTTP/1.1 as we expect.
            close()
            return
        }
        receivedAny = true
        if inbox.readableBytes == 0 {
            inbox = data
        } else {
            var buf = data
            inbox.writeBuffer(&buf)
        }
        // The delegate is held once for the read, not once an event (a retain and release
        // each; a response is three). An event may end the exchange, or hand this connection to
        // another one (back to the pool and taken again at once): it is looked at after each.
        while let ev = parser.next(&inbox) {
            deliver(ev, to: d)
            guard let now = delegate else { break }
            if now !== d { d = now }
        }
        // A consumed read buffer goes now: SwiftNIO reuses its receive buffer only when nothing
        // else holds it (an idle pooled connection would otherwise keep two).
        if inbox.readableBytes == 0 { inbox = upstreams.emptyBuffer }
    }

    private func deliver(_ ev: consuming HTTP1ResponseEvent, to d: any UpstreamDelegate) {
        // Consumed, so the head moves to the delegate instead of being copied (retains).
        switch consume ev {
        case .informational(let h): d.upstreamInformational(self, h)
        case .head(let h):
            upstreamKeepAlive = h.keepAlive
            d.upstreamHead(self, h)
        case .body(let b): d.upstreamBody(self, b)
        case .end:
            busy = false
            if inbox.readableBytes > 0 { upstreamKeepAlive = false }
            d.upstreamEnd(self)
        case .error(let e):
            upstreamKeepAlive = false
            delegate = nil
            d.upstreamFailed(self, e)
            close()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) { readComplete() }

    /// The end of one read event.
    func readComplete() {
        delegate?.upstreamReadComplete(self)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) { writabilityChanged(context.channel.isWritable) }

    func writabilityChanged(_ writable: Bool) {
        isWritable = writable
        delegate?.upstreamWritabilityChanged(self, writable: isWritable)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tls, tlsFailure == nil { tlsFailure = tls.explainFailure(error) }
        context.close(promise: nil)
    }
}
