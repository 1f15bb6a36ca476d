import NIOCore

/// A bidirectional byte tunnel between two channels on one event loop: a client connection and
/// the upstream connection it was joined to. What WebSocket pass-through (after a `101`) and L4
/// SNI `pass` both become; neither HTTP parser runs once it is installed.
///
/// - **Backpressure**, both ways: a side reads only while its partner is writable; a partner
///   that becomes writable again lets the other side read (SwiftNIO's connect-proxy "glue").
/// - **Close**: when either side closes or half-closes, what was relayed to the other side is
///   flushed, then the other side is closed too. The relay ends when both are closed.
/// - **Idle timeout**: no byte either way for `idleTimeout` closes both sides. One timer per
///   tunnel, re-armed lazily (a tunnel lives long: a timer per read would cost more).
///
/// Lives on the two channels' loop; the sides hold the relay, the relay its sides until it ends
/// (then the cycle is broken).
final class ByteRelay {
    /// Why the relay ended, for logs.
    enum End: Equatable {
        case clientClosed, upstreamClosed, idleTimeout
    }

    /// What the access log gets.
    struct Stats: Equatable {
        /// Bytes relayed from the client to the upstream (including bytes read before the relay).
        var clientToUpstream: Int64 = 0
        var upstreamToClient: Int64 = 0
        var started: NIODeadline
        var ended: NIODeadline?
        var end: End?
    }

    let idleTimeout: TimeAmount
    private(set) var stats: Stats
    private var client: Side?
    private var upstream: Side?
    private var lastActivity: NIODeadline
    private var idleTimer: Scheduled<Void>?
    private var onEnd: ((Stats) -> Void)?
    private let eventLoop: any EventLoop
    /// Set once a side closed: the other is being flushed and closed.
    private var closing = false

    /// - onEnd: called once, on the loop, when both sides have closed.
    init(eventLoop: any EventLoop, idleTimeout: TimeAmount, onEnd: ((Stats) -> Void)? = nil) {
        self.eventLoop = eventLoop
        self.idleTimeout = idleTimeout
        let now = eventLoop.now
        self.stats = Stats(started: now)
        self.lastActivity = now
        self.onEnd = onEnd
    }

    var isFinished: Bool { stats.ended != nil }

    /// Joins the two channels: adds a side as the last handler of each pipeline, relays the
    /// bytes read before the relay existed (`fromClient` to the upstream, `fromUpstream` to the
    /// client), and starts reading both. Call on the channels' loop, with whatever framed the
    /// bytes before removed (or about to be, in the same loop tick). When a channel is already
    /// closed the relay closes the other and ends.
    func start(client clientChannel: any Channel, upstream upstreamChannel: any Channel,
               fromClient: ByteBuffer?, fromUpstream: ByteBuffer?) {
        eventLoop.preconditionInEventLoop()
        precondition(clientChannel.eventLoop === eventLoop && upstreamChannel.eventLoop === eventLoop,
                     "a relay's channels share its loop")
        let c = Side(relay: self, isClient: true)
        let u = Side(relay: self, isClient: false)
        client = c
        upstream = u
        do {
            try clientChannel.pipeline.syncOperations.addHandler(c)
            try upstreamChannel.pipeline.syncOperations.addHandler(u)
        } catch {
            clientChannel.close(promise: nil)
            upstreamChannel.close(promise: nil)
            // A side that never joined a pipeline never sees its channel close.
            if c.context == nil { c.closed = true }
            if u.context == nil { u.closed = true }
            finishIfBothClosed()
            return
        }
        if let b = fromClient, b.readableBytes > 0 { transfer(b, from: c) }
        if let b = fromUpstream, b.readableBytes > 0 { transfer(b, from: u) }
        u.flushIfWritten()
        c.flushIfWritten()
        // A channel that closed before its side joined sends that side no inactive event.
        if !clientChannel.isActive { sideClosed(c) }
        if !upstreamChannel.isActive { sideClosed(u) }
        guard !closing else { return }
        c.kickRead()
        u.kickRead()
        armIdleTimer(after: idleTimeout)
    }

    // MARK: relaying

    fileprivate func partner(of side: Side) -> Side? { side.isClient ? upstream : client }

    fileprivate func transfer(_ bytes: ByteBuffer, from side: Side) {
        let n = Int64(bytes.readableBytes)
        if side.isClient { stats.clientToUpstream += n } else { stats.upstreamToClient += n }
        lastActivity = eventLoop.now
        guard let other = partner(of: side), !other.closed else { return }
        other.write(bytes)
        if !other.isWritable {
            // Flush now: the partner's buffer only drains (and writability only comes back)
            // once its writes are flushed.
            other.flushIfWritten()
        }
    }

    /// A side's channel closed: flush and close the other.
    fileprivate func sideClosed(_ side: Side) {
        guard !side.closed else { return }
        side.closed = true
        closeOther(than: side)
        finishIfBothClosed()
    }

    /// A side's peer half-closed (its input ended): the tunnel ends as for a close. The other
    /// side is flushed and closed, and its close then closes this one.
    fileprivate func sideInputClosed(_ side: Side) {
        closeOther(than: side)
    }

    private func closeOther(than side: Side) {
        if !closing {
            closing = true
            stats.end = side.isClient ? .clientClosed : .upstreamClosed
        }
        if let other = partner(of: side), !other.closed { other.closeAfterFlush() }
    }

    private func finishIfBothClosed() {
        guard client?.closed ?? true, upstream?.closed ?? true, stats.ended == nil else { return }
        stats.ended = eventLoop.now
        idleTimer?.cancel()
        idleTimer = nil
        // The sides hold the relay and the relay its sides: let go.
        client = nil
        upstream = nil
        let done = onEnd
        onEnd = nil
        done?(stats)
    }

    // MARK: idle timeout

    private func armIdleTimer(after delay: TimeAmount) {
        idleTimer = eventLoop.scheduleTask(in: delay) { [self] in
            idleTimer = nil
            guard !isFinished else { return }
            let idle = eventLoop.now - lastActivity
            if idle >= idleTimeout {
                idleExpired()
            } else {
                armIdleTimer(after: idleTimeout - idle)
            }
        }
    }

    private func idleExpired() {
        guard !closing else { return }
        closing = true
        stats.end = .idleTimeout
        client?.closeNow()
        upstream?.closeNow()
    }

    // MARK: one side

    /// The relay's handler in one channel: the last in its pipeline.
    final class Side: ChannelDuplexHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        /// Strong (a side lives as long as its pipeline); let go by `handlerRemoved`.
        private var relay: ByteRelay?
        let isClient: Bool
        fileprivate var context: ChannelHandlerContext?
        /// Its channel closed (or it left the pipeline).
        fileprivate var closed = false
        private var closeRequested = false
        /// A `read` held back while the partner could not take more.
        private var readPending = false
        private var written = false

        fileprivate init(relay: ByteRelay, isClient: Bool) {
            self.relay = relay
            self.isClient = isClient
        }

        fileprivate var isWritable: Bool { context?.channel.isWritable ?? false }

        fileprivate func write(_ b: ByteBuffer) {
            guard let context else { return }
            context.write(wrapOutboundOut(b), promise: nil)
            written = true
        }

        fileprivate func flushIfWritten() {
            guard written, let context else { return }
            written = false
            context.flush()
        }

        fileprivate func closeAfterFlush() {
            guard let context, !closeRequested else { return }
            closeRequested = true
            written = false
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).whenComplete { _ in
                context.close(promise: nil)
            }
        }

        fileprivate func closeNow() {
            closeRequested = true
            context?.close(promise: nil)
        }

        /// Reads once the relay starts (a handler removed before may have held a `read` back).
        fileprivate func kickRead() {
            guard let context, !closed else { return }
            read(context: context)
        }

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }

        func handlerRemoved(context: ChannelHandlerContext) {
            // Removed without its channel closing (not done by Prox): the relay sees a close.
            if !closed { relay?.sideClosed(self) }
            self.context = nil
            relay = nil
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            relay?.transfer(unwrapInboundIn(data), from: self)
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            if let relay, let other = relay.partner(of: self) { other.flushIfWritten() }
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            // This side drained: the other may read again.
            if context.channel.isWritable, let relay, let other = relay.partner(of: self) { other.resumeRead() }
            context.fireChannelWritabilityChanged()
        }

        private func resumeRead() {
            guard readPending, let context else { return }
            readPending = false
            context.read()
        }

        func read(context: ChannelHandlerContext) {
            if let relay, let other = relay.partner(of: self), !other.closed, !other.isWritable {
                readPending = true
                return
            }
            context.read()
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .inputClosed? = event as? ChannelEvent {
                // A half-close ends the tunnel: the other side is flushed and closed, which in
                // turn closes this one.
                relay?.sideInputClosed(self)
                return
            }
            context.fireUserInboundEventTriggered(event)
        }

        func channelInactive(context: ChannelHandlerContext) {
            relay?.sideClosed(self)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
