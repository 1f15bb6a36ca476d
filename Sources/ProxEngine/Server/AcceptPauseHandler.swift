import Logging
import ProxCore
import NIOCore

/// On a SwiftNIO listener: when `accept` fails for want of descriptors or memory, reading pauses
/// for `ProxServer.acceptBackoff` (500 ms), with one warning, then resumes. SwiftNIO keeps such a
/// listener registered for reads, and the still-queued connection makes it readable again at
/// once, so without the pause the loop spins at a full core. (SwiftNIO's `AcceptBackoffHandler`
/// cannot help: it defers the next `read`, but after a failed accept the channel never asks for
/// one; only turning `autoRead` off unregisters it.)
final class AcceptPauseHandler: ChannelInboundHandler {
    typealias InboundIn = Any

    private let listener: ListenerSpec
    private let logger: Logger
    /// Whether accepting may resume: false while the listener is at `max_connections` (that
    /// limit turns reading back on itself when a connection closes).
    private let mayResume: () -> Bool
    private var paused = false

    init(listener: ListenerSpec, logger: Logger, mayResume: @escaping () -> Bool) {
        self.listener = listener
        self.logger = logger
        self.mayResume = mayResume
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let code = (error as? IOError)?.errnoCode, let pause = ProxServer.acceptBackoff(errno: code) else {
            context.fireErrorCaught(error)
            return
        }
        let channel = context.channel
        // Off even when already paused: `max_connections` may have turned reading back on.
        channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        guard !paused else { return }
        paused = true
        logger.warning("\(ProxServer.acceptPauseMessage(listener, errno: code, pause: pause))")
        context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: pause) { [self] in
            paused = false
            if channel.isActive && mayResume() {
                channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            }
        }
    }
}
