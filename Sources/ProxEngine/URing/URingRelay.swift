#if os(Linux)
import NIOCore

/// `ByteRelay` for the io_uring engine: a WebSocket tunnel between two `URingSocket`s of one
/// worker after a `101`. The same rules: a side reads only while its partner is writable; when
/// either side closes, the other is flushed and closed; no byte either way for `idleTimeout`
/// closes both. The relay is both sockets' delegate; it and they let go of each other when both
/// have closed.
final class URingRelay {
    private var client: Side?
    private var upstream: Side?
    private(set) var stats: ByteRelay.Stats
    let idleTimeout: TimeAmount
    private let worker: URingWorker
    private var lastActivity: NIODeadline
    private var idleTimer: Scheduled<Void>?
    private var onEnd: ((ByteRelay.Stats) -> Void)?
    private var closing = false

    init(worker: URingWorker, idleTimeout: TimeAmount, onEnd: @escaping (ByteRelay.Stats) -> Void) {
        self.worker = worker
        self.idleTimeout = idleTimeout
        let now = NIODeadline.now()
        stats = ByteRelay.Stats(started: now)
        lastActivity = now
        self.onEnd = onEnd
    }

    /// Joins the sockets, relays what was read before (`fromClient` up, `fromUpstream` down) and
    /// starts reading both. On the worker's thread.
    func start(client c: URingSocket, upstream u: URingSocket, fromClient: ByteBuffer, fromUpstream: ByteBuffer) {
        let cs = Side(relay: self, socket: c, isClient: true)
        let us = Side(relay: self, socket: u, isClient: false)
        client = cs
        upstream = us
        c.delegate = cs
        u.delegate = us
        if fromClient.readableBytes > 0 { transfer(fromClient, from: cs) }
        if fromUpstream.readableBytes > 0 { transfer(fromUpstream, from: us) }
        u.flush()
        c.flush()
        if c.isClosed { sideClosed(cs) }
        if u.isClosed { sideClosed(us) }
        guard !closing else { return }
        c.setReading(true)
        u.setReading(true)
        armIdleTimer(after: idleTimeout)
    }

    fileprivate func partner(of side: Side) -> Side? { side.isClient ? upstream : client }

    fileprivate func transfer(_ bytes: ByteBuffer, from side: Side) {
        let n = Int64(bytes.readableBytes)
        if side.isClient { stats.clientToUpstream += n } else { stats.upstreamToClient += n }
        lastActivity = NIODeadline.now()
        guard let other = partner(of: side), !other.closed else { return }
        other.socket.send(bytes)
    }

    fileprivate func sideClosed(_ side: Side) {
        guard !side.closed else { return }
        side.closed = true
        if !closing {
            closing = true
            stats.end = side.isClient ? .clientClosed : .upstreamClosed
        }
        if let other = partner(of: side), !other.closed { other.socket.closeAfterSending() }
        finishIfBothClosed()
    }

    private func finishIfBothClosed() {
        guard client?.closed ?? true, upstream?.closed ?? true, stats.ended == nil else { return }
        stats.ended = NIODeadline.now()
        idleTimer?.cancel()
        idleTimer = nil
        client = nil
        upstream = nil
        let done = onEnd
        onEnd = nil
        done?(stats)
    }

    private func armIdleTimer(after delay: TimeAmount) {
        idleTimer = worker.assumeIsolatedUnsafeUnchecked().scheduleTask(in: delay) { [self] in
            idleTimer = nil
            guard stats.ended == nil else { return }
            let idle = NIODeadline.now() - lastActivity
            if idle >= idleTimeout {
                guard !closing else { return }
                closing = true
                stats.end = .idleTimeout
                client?.socket.close()
                upstream?.socket.close()
            } else {
                armIdleTimer(after: idleTimeout - idle)
            }
        }
    }

    /// One socket's end of the relay.
    fileprivate final class Side: URingSocketDelegate {
        /// Strong until the socket closes (the socket holds its delegate until then).
        var relay: URingRelay?
        let socket: URingSocket
        let isClient: Bool
        var closed = false
        /// A read held back while the partner could not take more.
        var readPending = false

        init(relay: URingRelay, socket: URingSocket, isClient: Bool) {
            self.relay = relay
            self.socket = socket
            self.isClient = isClient
        }

        func socketReceived(_ data: consuming ByteBuffer) { relay?.transfer(data, from: self) }

        func socketReadComplete() {
            if let relay, let other = relay.partner(of: self) { other.socket.flush() }
        }

        func socketReadRequested() {
            if let relay, let other = relay.partner(of: self), !other.closed, !other.socket.isWritable {
                readPending = true
                return
            }
            socket.read()
        }

        func socketWritabilityChanged(_ writable: Bool) {
            // This side drained: the other may read again.
            guard writable, let relay, let other = relay.partner(of: self), other.readPending else { return }
            other.readPending = false
            other.socket.read()
        }

        func socketClosed() {
            let r = relay
            relay = nil
            r?.sideClosed(self)
        }
    }
}
#endif
