import NIOCore
import ProxCore

/// What a TLS listener with `l4_routes` does with one connection, once its ClientHello is known.
enum L4Decision {
    /// Relay the raw stream to an endpoint of `pool` (`route` chose it).
    case pass(route: L4Route, pool: PoolSpec)
    /// Close the connection.
    case drop(route: L4Route)
    /// No L4 route takes it: terminate TLS and route HTTP. `install` adds the TLS handler and
    /// the HTTP/1 handler at the end of the pipeline (after the peek handler).
    case terminate(install: (ChannelPipeline.SynchronousOperations) throws -> Void)
}

/// First (and, until it decides, only) handler of a connection on a TLS listener with
/// `l4_routes`: holds the bytes received until they make a whole ClientHello
/// (`ClientHelloParser`), within `maxBytes` and `timeout`, then asks `decide` (which reads the
/// current snapshot once) what to do with its SNI:
///
/// - `pass`: stop reading, connect to the pool (`connect`), then join the two connections with a
///   `ByteRelay`, the held ClientHello bytes first; a failed connect closes the client.
/// - `drop`: close.
/// - `terminate`: add the TLS and HTTP handlers behind it, hand them the held bytes, leave.
///
/// A malformed or truncated ClientHello, too many bytes, or the timeout: the connection closes
/// (no TLS alert: nothing was terminated). Runs on the connection's loop.
final class ClientHelloPeekHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer

    /// How the connection ended up, for tests and logs.
    enum Outcome: Equatable {
        case pending, passed(String), dropped(String), terminated, refused(String), timedOut
    }

    let maxBytes: Int
    let timeout: TimeAmount
    private let decide: (String?) -> L4Decision
    private let connect: (PoolSpec, L4Route, any EventLoop) -> EventLoopFuture<any Channel>
    private let log: (String) -> Void
    private var context: ChannelHandlerContext?
    private var held = ByteBuffer()
    private var timer: Scheduled<Void>?
    /// Set once decided: no more parsing, reads held until the handler leaves.
    private var decided = false
    private var readPending = false
    private(set) var outcome = Outcome.pending

    init(maxBytes: Int, timeout: TimeAmount, decide: @escaping (String?) -> L4Decision,
         connect: @escaping (PoolSpec, L4Route, any EventLoop) -> EventLoopFuture<any Channel>,
         log: @escaping (String) -> Void = { _ in }) {
        self.maxBytes = maxBytes
        self.timeout = timeout
        self.decide = decide
        self.connect = connect
        self.log = log
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        timer = context.eventLoop.scheduleTask(in: timeout) { [self] in
            timer = nil
            guard !decided, let context = self.context else { return }
            decided = true
            outcome = .timedOut
            log("no complete ClientHello within \(timeout.nanoseconds / 1_000_000) ms")
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var b = unwrapInboundIn(data)
        if held.readableBytes == 0 { held = b } else { held.writeBuffer(&b) }
        guard !decided else { return }  // connecting: held for the relay
        switch ClientHelloParser.parse(held, maxBytes: maxBytes) {
        case .needMore:
            if held.readableBytes >= maxBytes { refuse(context, "the ClientHello needs more than \(maxBytes) bytes") }
        case .invalid(let why):
            refuse(context, why)
        case .clientHello(let serverName):
            decided = true
            timer?.cancel()
            timer = nil
            act(context, decide(serverName))
        }
    }

    private func refuse(_ context: ChannelHandlerContext, _ why: String) {
        decided = true
        outcome = .refused(why)
        log("not a ClientHello: \(why)")
        context.close(promise: nil)
    }

    private func act(_ context: ChannelHandlerContext, _ decision: L4Decision) {
        switch decision {
        case .drop(let route):
            outcome = .dropped(route.id)
            context.close(promise: nil)
        case .terminate(let install):
            outcome = .terminated
            do {
                try install(context.pipeline.syncOperations)
            } catch {
                log("cannot set up TLS: \(error)")
                context.close(promise: nil)
                return
            }
            let bytes = held
            held = ByteBuffer()
            // The TLS handler behind this one reads the ClientHello as if it had come now.
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
            leave(context)
        case .pass(let route, let pool):
            outcome = .passed(route.id)
            let channel = context.channel
            connect(pool, route, context.eventLoop).assumeIsolated().whenComplete { result in
                switch result {
                case .failure(let error):
                    self.log("l4 route \(route.id): no connection to pool \(pool.id): \(error)")
                    channel.close(promise: nil)
                case .success(let upstream):
                    guard let context = self.context, channel.isActive else {
                        upstream.close(promise: nil)
                        return
                    }
                    let bytes = self.held
                    self.held = ByteBuffer()
                    let relay = ByteRelay(eventLoop: context.eventLoop, idleTimeout: .milliseconds(route.idleTimeout))
                    // Out of the pipeline first: its held `read` must not hold the relay's back.
                    self.leave(context)
                    relay.start(client: channel, upstream: upstream, fromClient: bytes, fromUpstream: nil)
                }
            }
        }
    }

    private func leave(_ context: ChannelHandlerContext) {
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    // Reads are held while the upstream connection is made: the kernel pushes back on the client.
    func read(context: ChannelHandlerContext) {
        if decided, case .passed = outcome {
            readPending = true
            return
        }
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if !decided {
            // The client closed before its ClientHello was whole (a truncated one).
            decided = true
            outcome = .refused("the connection closed before a whole ClientHello")
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
