import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ProxCore
#if canImport(Glibc)
import Glibc
#endif

/// The running proxy: event loops, listeners, the snapshot every loop reads, reloads and drain.
///
/// Thread model: each event loop owns a `LoopState`; the listener hands each accepted connection
/// to a handler on the connection's own loop. A reload compiles on the caller's thread (never an
/// event loop) and then posts the new snapshot to every loop: from then on new requests on that
/// loop read it, and requests already in flight keep the one they started with.
public final class ProxServer: @unchecked Sendable {
    public let group: MultiThreadedEventLoopGroup
    public let logger: Logger
    private var loopStates: [ObjectIdentifier: LoopState] = [:]
    private var orderedLoops: [(any EventLoop, LoopState)] = []
    private var serverChannels: [(ListenerSpec, any Channel)] = []
    private let lock = NIOLock()
    private var current: Snapshot
    private var connectionCounts: [String: NIOLockedValueBox<Int>] = [:]
    private let accessLogFD: Int32

    /// Starts `threads` event loops with `snapshot`. Call `start()` to bind the listeners.
    public init(snapshot: Snapshot, threads: Int, logger: Logger) throws {
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        self.logger = logger
        self.current = snapshot
        self.accessLogFD = try ProxServer.openAccessLog(snapshot.settings.accessLog)
        var seed: UInt64 = 0x5eed
        let loops = Array(group.makeIterator())
        for loop in loops {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let state = LoopState(eventLoop: loop, snapshot: snapshot, seed: seed,
                                  accessLog: AccessLog(fd: accessLogFD), loopCount: loops.count, logger: logger)
            loopStates[ObjectIdentifier(loop)] = state
            orderedLoops.append((loop, state))
            try loop.submit { state.startSweep() }.wait()
        }
    }

    static func openAccessLog(_ target: String) throws -> Int32 {
        switch target {
        case "off", "": return -1
        case "stdout": return 1
        case "stderr": return 2
        default:
            let fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if fd < 0 { throw ServerError("cannot open access log \(target): errno \(errno)") }
            return fd
        }
    }

    public var snapshot: Snapshot { lock.withLock { current } }

    /// Binds every listener of the current snapshot. Returns the bound addresses, in listener
    /// order (port 0 in the config becomes the port the system chose).
    @discardableResult
    public func start() throws -> [SocketAddress] {
        var bound: [SocketAddress] = []
        for listener in snapshot.listeners {
            let ch: any Channel
            do { ch = try bind(listener) } catch { throw Self.bindFailure(error, listener) }
            serverChannels.append((listener, ch))
            if let a = ch.localAddress { bound.append(a) }
        }
        return bound
    }

    /// What a listener that cannot bind says: which listener, which address, and what to do,
    /// not the raw system call error.
    static func bindFailure(_ error: any Error, _ listener: ListenerSpec) -> ServerError {
        let address = listener.host.contains(":") ? "[\(listener.host)]:\(listener.port)" : "\(listener.host):\(listener.port)"
        let head = "listener '\(listener.id)' (listeners[\(listener.index)]) cannot listen on \(address): "
        switch (error as? IOError)?.errnoCode {
        case EADDRINUSE?:
            return ServerError(head + "the address is already in use. Another process, or another prox, is listening there: "
                + "stop it (`ss -ltnp 'sport = :\(listener.port)'` shows which), or give listener '\(listener.id)' another address.")
        case EACCES?:
            return ServerError(head + "permission denied. Ports below 1024 need root or the CAP_NET_BIND_SERVICE capability: "
                + "use a port of 1024 or above, or grant the capability (`setcap cap_net_bind_service=+ep` on the binary).")
        case EADDRNOTAVAIL?:
            return ServerError(head + "this machine has no such address. Use one of its addresses, 127.0.0.1, or 0.0.0.0 for all.")
        default:
            return ServerError(head + "\(error)")
        }
    }

    public var boundPorts: [Int] { serverChannels.compactMap { $0.1.localAddress?.port } }

    private func bind(_ listener: ListenerSpec) throws -> any Channel {
        let count = NIOLockedValueBox(0)
        connectionCounts[listener.id] = count
        let states = loopStates
        let max = listener.maxConnections
        let logger = self.logger
        // At max_connections the listener stops accepting (its reads pause) and new clients wait
        // in the kernel's accept queue, as with nginx and HAProxy; accepting resumes when a
        // connection closes. A connection accepted in the same burst that filled the last slot
        // is closed.
        let server = NIOLockedValueBox<(any Channel)?>(nil)
        let ch = try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 4096)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 4)
            // SwiftNIO keeps each connection's receive buffer between reads, so its size is
            // memory every idle keep-alive connection holds. 1 KiB first (nginx's
            // client_header_buffer_size), growing when a read fills it.
            .childChannelOption(ChannelOptions.recvAllocator,
                                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 1024, maximum: 65536))
            .childChannelInitializer { channel in
                let (admitted, nowFull) = count.withLockedValue { n -> (Bool, Bool) in
                    if n >= max { return (false, true) }
                    n += 1
                    return (true, n >= max)
                }
                if nowFull { server.withLockedValue { $0 }?.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in } }
                guard admitted else {
                    logger.warning("listener \(listener.id): max_connections (\(max)) reached, closing a connection accepted in the same burst")
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in
                    let wasFull = count.withLockedValue { n -> Bool in
                        let full = n >= max
                        n -= 1
                        return full
                    }
                    if wasFull { server.withLockedValue { $0 }?.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in } }
                }
                guard let state = states[ObjectIdentifier(channel.eventLoop)], !state.draining else {
                    return channel.close()
                }
                let peer = channel.remoteAddress
                let ip = peer?.ipAddress.flatMap { IPAddress($0) } ?? .v4(0)
                return channel.eventLoop.makeCompletedFuture {
                    // TLS is decided once per listener, when it binds: a cleartext connection
                    // pays one nil check here and nothing per request.
                    if let bindTLS = listener.tls {
                        // The loop's current snapshot: a reload's certificates (and l4_routes)
                        // serve new connections.
                        let current = ProxServer.currentListener(listener, in: state.snapshot)
                        if let l4 = current?.l4 {
                            // L4 SNI dispatch: the ClientHello is peeked at first; TLS and HTTP
                            // come after it only for a connection no l4 route takes.
                            try channel.pipeline.syncOperations.addHandler(
                                ProxServer.peekHandler(l4, listener: listener, bindTLS: bindTLS, state: state, client: ip,
                                                       clientPort: peer?.port ?? 0))
                            return
                        }
                        try (current?.tls ?? bindTLS).addServerHandler(to: channel.pipeline.syncOperations)
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ClientConnectionHandler(state: state, listener: listener, client: ip, clientPort: peer?.port ?? 0))
                }
            }
            .bind(host: listener.host, port: listener.port)
            .wait()
        server.withLockedValue { $0 = ch }
        return ch
    }

    /// The TLS of the listener bound as `listener` in snapshot `s`, by id (a reload may reorder
    /// listeners); nil when `s` has no TLS for it (a reload that drops `tls` takes effect on
    /// restart: the bound listener keeps serving TLS, with its certificates of before).
    static func currentTLS(of listener: ListenerSpec, in s: Snapshot) -> (any ListenerTLS)? {
        currentListener(listener, in: s)?.tls
    }

    /// The listener bound as `listener`, as snapshot `s` declares it (by id: a reload may
    /// reorder listeners); nil when `s` no longer has it.
    static func currentListener(_ listener: ListenerSpec, in s: Snapshot) -> ListenerSpec? {
        let i = listener.index
        if i < s.listeners.count, s.listeners[i].id == listener.id { return s.listeners[i] }
        return s.listeners.first { $0.id == listener.id }
    }

    /// The ClientHello peek of a connection on a TLS listener with `l4_routes`. Its bounds come
    /// from the snapshot current when the connection was accepted; its decision reads the one
    /// current when the ClientHello is whole (once), so a reload changes L4 and L7 routes of a
    /// port together.
    static func peekHandler(_ l4: L4Table, listener: ListenerSpec, bindTLS: any ListenerTLS, state: LoopState,
                            client: IPAddress, clientPort: Int) -> ClientHelloPeekHandler {
        ClientHelloPeekHandler(
            maxBytes: l4.clientHelloMaxBytes, timeout: .milliseconds(l4.clientHelloTimeout),
            decide: { serverName in
                let s = state.snapshot
                let current = currentListener(listener, in: s)
                if let table = current?.l4, let i = table.select(serverName) {
                    let route = table.routes[i]
                    switch route.action {
                    case .drop: return .drop(route: route)
                    case .pass(let pool): return .pass(route: route, pool: s.pools[pool])
                    }
                }
                let tls = current?.tls ?? bindTLS
                return .terminate { pipeline in
                    try tls.addServerHandler(to: pipeline)
                    try pipeline.addHandler(ClientConnectionHandler(state: state, listener: listener, client: client, clientPort: clientPort))
                }
            },
            connect: { pool, _, _ in
                state.upstreams.connectTunnel(pool, version: state.snapshot.version, balancers: state.balancers)
            },
            log: { message in
                state.logger.info("l4: \(message)", metadata: ["listener": "\(listener.id)", "client": "\(client)"])
            })
    }

    /// Snapshots replaced by a reload, kept here until nothing else holds them and then freed
    /// by the reloading thread: freeing a snapshot frees its router, compiled regexes and JIT
    /// code, work that must not land on an event loop when its last request lets go.
    private var retired: [Snapshot] = []

    /// Swaps in a new snapshot: every loop's new requests read it from now on. Each loop gets
    /// the new reference with one task (a pointer store on the loop), so a request's one
    /// snapshot read is a plain load with no cross-core reference counting. Call it off the
    /// event loops: it waits for them to take the new snapshot, then frees what is retired.
    public func swap(_ next: Snapshot) {
        let listenersChanged: Bool = lock.withLock {
            let p = current
            current = next
            retired.append(p)
            func bound(_ s: Snapshot) -> [String] { s.listeners.map { "\($0.id)@\($0.host):\($0.port)/\($0.scheme)" } }
            return bound(p) != bound(next)
        }
        for (loop, state) in orderedLoops {
            loop.execute { state.snapshot = next }
        }
        if listenersChanged {
            logger.warning("listener addresses or TLS on/off changed in the new config; they take effect on restart (running listeners are kept; TLS certificates do reload)")
        }
        logger.info("snapshot \(next.version) is live", metadata: ["routes": "\(next.routes.count)", "pools": "\(next.pools.count)", "source": "\(next.source)"])
        freeRetired()
    }

    /// Frees retired snapshots that only `retired` still holds, after the loops have taken the
    /// current one. Requests still running on an old snapshot keep it alive: a reaper thread
    /// then retries every 10 ms for up to 10 s (a later reload frees what is left), so the
    /// reload itself never waits for them.
    func freeRetired() {
        if orderedLoops.first?.0.inEventLoop == true { return }
        for (loop, _) in orderedLoops { try? loop.submit {}.wait() }
        if sweepRetired() || lock.withLock({ reaperRunning }) { return }
        lock.withLock { reaperRunning = true }
        let t = Thread { [self] in
            let deadline = NIODeadline.now() + .seconds(10)
            while !sweepRetired() && NIODeadline.now() < deadline { usleep(10_000) }
            lock.withLock { reaperRunning = false }
        }
        t.name = "prox-snapshot-reaper"
        t.start()
    }

    private var reaperRunning = false

    /// One pass over `retired`; true when nothing is left. The last references are dropped
    /// here, on the calling thread.
    @discardableResult
    private func sweepRetired() -> Bool {
        let (freed, left): ([Snapshot], Int) = lock.withLock {
            var keep: [Snapshot] = [], free: [Snapshot] = []
            while var s = retired.popLast() {
                if isKnownUniquelyReferenced(&s) { free.append(s) } else { keep.append(s) }
            }
            retired = keep
            return (free, keep.count)
        }
        _ = freed
        return left == 0
    }

    var retiredCount: Int { lock.withLock { retired.count } }

    /// Open client connections across loops (for drain and tests).
    public func openConnections() -> Int {
        var total = 0
        for (loop, state) in orderedLoops {
            total += (try? loop.submit { state.connections.count }.wait()) ?? 0
        }
        return total
    }

    #if DEBUG
    /// Tests: from now on, every loop records the objects it makes per connection and request.
    func trackObjects() {
        for (loop, state) in orderedLoops { try? loop.submit { state.tracker = ObjectTracker() }.wait() }
    }

    /// Tests: the tracked objects still alive, summed over loops; idle pooled upstream
    /// connections are closed first when `closingIdle` (they are meant to outlive requests).
    func liveObjects(closingIdle: Bool = true) -> [ObjectTracker.Kind: Int] {
        var total: [ObjectTracker.Kind: Int] = [:]
        for (loop, state) in orderedLoops {
            let counts = (try? loop.submit { () -> [ObjectTracker.Kind: Int] in
                if closingIdle { state.upstreams.closeAll() }
                return state.tracker?.alive() ?? [:]
            }.wait()) ?? [:]
            total.merge(counts, uniquingKeysWith: +)
        }
        return total
    }
    #endif

    /// Stops accepting, lets requests in flight finish for up to `timeout`, then closes
    /// everything. Returns true when every connection finished in time.
    @discardableResult
    public func drain(timeout: TimeAmount) -> Bool {
        logger.info("draining: no new connections; waiting up to \(timeout.nanoseconds / 1_000_000) ms for requests in flight")
        for (_, ch) in serverChannels { try? ch.close().wait() }
        serverChannels = []
        for (loop, state) in orderedLoops {
            loop.execute {
                state.draining = true
                for c in Array(state.connections.values) { c.drain() }
            }
        }
        let deadline = NIODeadline.now() + timeout
        var clean = false
        while NIODeadline.now() < deadline {
            if openConnections() == 0 { clean = true; break }
            usleep(50_000)
        }
        if !clean {
            logger.warning("drain timeout: closing \(openConnections()) connection(s) still open")
            // Each request still in flight is answered (or cut) and logged as the drain's doing,
            // before the loops stop and the upstreams close under it.
            for (loop, state) in orderedLoops {
                try? loop.submit {
                    for c in Array(state.connections.values) { c.cutByDrain() }
                    state.accessLog.flush()
                }.wait()
            }
        }
        return clean
    }

    /// Closes everything and stops the event loops.
    public func shutdown() {
        for (_, ch) in serverChannels { try? ch.close().wait() }
        serverChannels = []
        for (loop, state) in orderedLoops {
            try? loop.submit {
                for c in Array(state.connections.values) { c.drain() }
                state.stop()
            }.wait()
        }
        try? group.syncShutdownGracefully()
        if accessLogFD > 2 { close(accessLogFD) }
    }
}

public struct ServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
