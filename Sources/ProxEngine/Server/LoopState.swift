import Logging
import NIOCore
import ProxCore
import ProxUpstream

/// Everything one event loop owns: its view of the current snapshot, its upstream connection
/// pools, its balancers, its open client connections and its access-log buffer. Touched only
/// on its own loop, so the hot path takes no lock and makes no thread hop.
final class LoopState {
    let eventLoop: any EventLoop
    /// The snapshot new requests on this loop read (once each, when their head arrives).
    var snapshot: Snapshot
    let balancers: BalancerRegistry
    let upstreams: UpstreamPool
    let accessLog: AccessLog
    /// Error log: upstream failures and aborted responses (one line each; nothing on success).
    var logger: Logger
    /// Open client connections, for the timeout sweep and for draining.
    var connections: [ObjectIdentifier: ClientConnectionHandler] = [:]
    var draining = false
    /// How many event loops share the work (per-endpoint connection limits are split among them).
    let loopCount: Int
    var sweepTask: RepeatedTask?

    init(eventLoop: any EventLoop, snapshot: Snapshot, seed: UInt64, accessLog: AccessLog, loopCount: Int,
         logger: Logger = Logger(label: "prox")) {
        self.eventLoop = eventLoop
        self.logger = logger
        self.loopCount = loopCount
        self.snapshot = snapshot
        self.balancers = BalancerRegistry(seed: seed)
        self.upstreams = UpstreamPool(eventLoop: eventLoop)
        self.accessLog = accessLog
    }

    /// Starts the timeout sweep: every 250 ms, deadlines of connections, requests and idle
    /// upstream connections are checked. A sweep costs a pass over open connections; it saves
    /// scheduling and cancelling a timer per request.
    func startSweep() {
        sweepTask = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(250), delay: .milliseconds(250)) { [self] _ in
            let now = NIODeadline.now()
            for c in Array(connections.values) { c.checkTimeouts(now) }
            upstreams.closeExpiredIdle(now)
            accessLog.flush()
        }
    }

    func stop() {
        sweepTask?.cancel()
        upstreams.closeAll()
        accessLog.flush()
    }
}
