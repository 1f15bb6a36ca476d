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
    /// The engine carrying cleartext HTTP/1 listeners (decided once, at start).
    public let engine: ServerEngine
    #if os(Linux)
    /// The io_uring engine's workers (none on SwiftNIO) and their loop states.
    private var workers: [(URingWorker, LoopState)] = []
    /// Listeners on the io_uring engine: the socket the workers accept on, and each worker's acceptor.
    private var uringListeners: [(spec: ListenerSpec, fds: [Int32], port: Int, acceptors: [URingAcceptor])] = []
    #endif
    private let lock = NIOLock()
    private var current: Snapshot
    private var connectionCounts: [String: NIOLockedValueBox<Int>] = [:]
    private let accessLogFD: Int32
    /// Set by the first `shutdown`: a second one does nothing (it would close the access log's
    /// descriptor again, and by then that number may be another file's).
    private var isShutDown = false

    /// Starts `threads` event loops with `snapshot`, on `engine` (`.nio` or `.uring`, as
    /// `EngineDecision` decided: on `.uring`, `threads` io_uring workers carry the cleartext
    /// HTTP/1 listeners and the SwiftNIO loops the rest). Call `start()` to bind the listeners.
    public init(snapshot: Snapshot, threads: Int, logger: Logger, engine: ServerEngine = .nio) throws {
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        self.logger = logger
        self.current = snapshot
        self.engine = engine == .uring ? .uring : .nio
        self.accessLogFD = try ProxServer.openAccessLog(snapshot.settings.accessLog)
        var seed: UInt64 = 0x5eed
        var loops: [any EventLoop] = Array(group.makeIterator())
        #if os(Linux)
        if self.engine == .uring {
            for i in 0..<max(1, threads) {
                let w = try URingWorker(name: "prox-uring-\(i)")
                // Still serving, slower: said once, at start.
                for what in w.degraded { logger.warning("io_uring worker \(w.name): \(what)") }
                loops.append(w)
            }
        }
        #endif
        for loop in loops {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            // Per-endpoint connection limits are split among the loops that carry HTTP.
            var turnClock: TurnClock?
            #if os(Linux)
            turnClock = (loop as? URingWorker)?.clock
            #endif
            let state = LoopState(eventLoop: loop, snapshot: snapshot, seed: seed,
                                  accessLog: AccessLog(fd: accessLogFD), loopCount: max(1, threads), logger: logger,
                                  turnClock: turnClock)
            loopStates[ObjectIdentifier(loop)] = state
            orderedLoops.append((loop, state))
            #if os(Linux)
            if let w = loop as? URingWorker { workers.append((w, state)) }
            #endif
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
            #if os(Linux)
            if !workers.isEmpty && listener.tls == nil {
                do { bound.append(try bindURing(listener)) } catch { throw Self.bindFailure(error, listener) }
                continue
            }
            #endif
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

    /// How long a listener stops accepting after `accept` failed with `errno`: 500 ms (as nginx)
    /// when the process or system is out of descriptors or memory, since the connection stays
    /// queued and the next attempt would fail the same way at once; nil (accept again now) for an
    /// error that used up its connection, such as one aborted before it was accepted.
    static func acceptBackoff(errno: Int32) -> TimeAmount? {
        switch errno {
        case EMFILE, ENFILE, ENOBUFS, ENOMEM: return .milliseconds(500)
        default: return nil
        }
    }

    /// The warning logged when accepting pauses: once per pause, so a full descriptor table
    /// does not flood the log.
    static func acceptPauseMessage(_ listener: ListenerSpec, errno: Int32, pause: TimeAmount) -> String {
        let what = errno == EMFILE ? " (the process's descriptor limit: raise `ulimit -n`, or lower the listener's `limits.max_connections` below it)" : ""
        return "listener \(listener.id): accept failed: \(String(cString: strerror(errno)))\(what); accepting pauses for \(pause.nanoseconds / 1_000_000) ms"
    }

    /// The ports bound, in listener order.
    public var boundPorts: [Int] {
        var ports: [(Int, Int)] = serverChannels.compactMap { l, ch in ch.localAddress?.port.map { (l.index, $0) } }
        #if os(Linux)
        ports += uringListeners.map { ($0.spec.index, $0.port) }
        #endif
        return ports.sorted { $0.0 < $1.0 }.map(\.1)
    }

    #if os(Linux)
    /// Binds a cleartext listener for the io_uring workers: a socket per worker sharing the port,
    /// each with a multishot accept armed; `max_connections` is counted across workers
    /// (`URingListenerGate`).
    private func bindURing(_ listener: ListenerSpec) throws -> SocketAddress {
        var address = try SocketAddress.makeAddressResolvingHost(listener.host, port: listener.port)
        // Each worker accepts on a socket of its own, all bound with SO_REUSEPORT: the kernel
        // spreads new connections over them. (A multishot accept per worker on one shared socket
        // gave every connection to the same worker: the first waiter in the socket's queue is
        // woken each time.) SO_REUSEPORT would let this bind share the port with another process
        // of the same user that set it too; a plain bind first keeps a busy port an error.
        if listener.port != 0 {
            let probe = try Self.listeningSocket(address, reusePort: false, listen: false)
            Glibc.close(probe)
        }
        var fds: [Int32] = []
        var acceptors: [URingAcceptor] = []
        let gate = URingListenerGate(max: listener.maxConnections)
        var local: SocketAddress? = nil
        do {
            for (worker, state) in workers {
                let fd = try Self.listeningSocket(address, reusePort: true, listen: true)
                fds.append(fd)
                if local == nil {
                    // Port 0: the first socket's port is the one every other socket binds.
                    let bound = Self.localAddress(fd, host: listener.host)
                    local = bound
                    if let port = bound.port { address.port = port }
                }
                acceptors.append(URingAcceptor(fd: fd, worker: worker, state: state, listener: listener, gate: gate))
            }
        } catch {
            for fd in fds { Glibc.close(fd) }
            throw error
        }
        gate.acceptors = acceptors
        for a in acceptors { try a.worker.submit { a.arm() }.wait() }
        let bound = local ?? address
        uringListeners.append((listener, fds, bound.port ?? listener.port, acceptors))
        return bound
    }

    /// A TCP socket bound to `address` (SO_REUSEADDR; SO_REUSEPORT when asked), listening when asked.
    private static func listeningSocket(_ address: SocketAddress, reusePort: Bool, listen: Bool) throws -> Int32 {
        let fd = socket(Int32(address.protocol.rawValue), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        let rc = address.withSockAddr { Glibc.bind(fd, $0, socklen_t($1)) }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            throw IOError(errnoCode: e, reason: "bind")
        }
        guard !listen || Glibc.listen(fd, 4096) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw IOError(errnoCode: e, reason: "listen")
        }
        return fd
    }

    private static func localAddress(_ fd: Int32, host: String) -> SocketAddress {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        if Int32(storage.ss_family) == AF_INET6 {
            return SocketAddress(withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in6.self) }, host: host)
        }
        return SocketAddress(withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in.self) }, host: host)
    }

    /// Stops the io_uring listeners: no worker accepts on them any more, and their sockets close.
    private func closeURingListeners() {
        for l in uringListeners {
            for a in l.acceptors { try? a.worker.submit { a.stop() }.wait() }
            for fd in l.fds {
                Glibc.shutdown(fd, Int32(SHUT_RDWR))
                Glibc.close(fd)
            }
        }
        uringListeners = []
    }
    #endif

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
            .serverChannelInitializer { server in
                // Out of descriptors or memory, accepting again at once fails again at once: the
                // loop would spin on the queued connection. Accepting pauses instead.
                server.eventLoop.makeCompletedFuture {
                    try server.pipeline.syncOperations.addHandler(AcceptPauseHandler(listener: listener, logger: logger) {
                        count.withLockedValue { $0 } < max
                    })
                }
            }
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

    /// Why `next` cannot be swapped into this server, or nil. On the io_uring engine, a config
    /// that uses what the engine does not carry (`EngineDecision.uringLacks`) is refused: its
    /// requests would fail on every connection, and moving listeners between engines takes a
    /// restart, where `auto` picks SwiftNIO.
    public func refusal(of next: Snapshot) -> String? {
        guard engine == .uring, let missing = EngineDecision.uringLacks(next) else { return nil }
        return "this process serves on the io_uring engine, and \(missing); restart prox to serve it on SwiftNIO (`server.engine: auto` picks SwiftNIO for such a config)"
    }

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
    public func openConnections() -> Int { openConnectionsPerLoop().reduce(0, +) }

    /// Open client connections on each loop, in loop order (SwiftNIO's, then io_uring workers').
    func openConnectionsPerLoop() -> [Int] {
        orderedLoops.map { loop, state in (try? loop.submit { state.connections.count }.wait()) ?? 0 }
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
        #if os(Linux)
        closeURingListeners()
        #endif
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
        if isShutDown { return }
        isShutDown = true
        for (_, ch) in serverChannels { try? ch.close().wait() }
        serverChannels = []
        #if os(Linux)
        closeURingListeners()
        #endif
        for (loop, state) in orderedLoops {
            try? loop.submit {
                for c in Array(state.connections.values) { c.drain() }
                state.stop()
            }.wait()
        }
        #if os(Linux)
        for (w, state) in workers {
            // Connections still open close now, so their sockets let go before the ring does.
            try? w.submit { for c in Array(state.connections.values) { c.closeNow() } }.wait()
            try? w.syncShutdownGracefully()
        }
        #endif
        try? group.syncShutdownGracefully()
        if accessLogFD > 2 { close(accessLogFD) }
    }
}

public struct ServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
