import NIOCore
import NIOPosix
import ProxCore
import ProxUpstream

/// One endpoint's connections on one event loop. Kept by connection key (the address, and with
/// TLS the TLS settings and server name), so the connections outlive a reload that keeps the
/// endpoint and its TLS; requests reach it by reference (see `PoolRuntime`), not by hashing the key.
final class EndpointConnections {
    struct Idle {
        let connection: UpstreamConnection
        let expires: NIODeadline
    }
    /// `EndpointSpec.connectionKey`.
    let key: String
    /// `host:port`, for logs.
    let address: String
    /// Idle keep-alive connections, newest last.
    var idle: [Idle] = []
    /// Connections open (idle or busy) on this loop.
    var open = 0
    var resolved: SocketAddress?

    init(key: String, address: String) {
        self.key = key
        self.address = address
    }
}

/// What one loop keeps for one pool of one snapshot: its balancer and its endpoints'
/// connections, by endpoint index. Made once per pool per snapshot version and loop.
final class PoolRuntime {
    let balancer: BalancerRegistry.Entry
    let endpoints: [EndpointConnections]

    init(balancer: BalancerRegistry.Entry, endpoints: [EndpointConnections]) {
        self.balancer = balancer
        self.endpoints = endpoints
    }
}

/// One event loop's upstream connections. Connections are made with this loop as their group,
/// so a request and its upstream connection share a thread.
final class LoopUpstreamConnections {
    let eventLoop: any EventLoop
    private(set) var byAddress: [String: EndpointConnections] = [:]
    /// `PoolRuntime`s of snapshot `runtimeVersion`, by pool index.
    private var runtimes: [PoolRuntime?] = []
    private var runtimeVersion = -1
    /// What a connection's consumed read buffer is replaced with (see `LoopState.emptyBuffer`).
    let emptyBuffer = ByteBuffer()
    #if DEBUG
    var tracker: ObjectTracker?
    #endif

    /// The io_uring worker's turn clock (`LoopState.now()`), nil on SwiftNIO.
    private let turnClock: TurnClock?

    init(eventLoop: any EventLoop, turnClock: TurnClock? = nil) {
        self.eventLoop = eventLoop
        self.turnClock = turnClock
    }

    /// The endpoint state for `spec` (by its connection key), made on first use.
    func endpoint(_ spec: EndpointSpec) -> EndpointConnections {
        if let e = byAddress[spec.connectionKey] { return e }
        let e = EndpointConnections(key: spec.connectionKey, address: spec.address)
        byAddress[spec.connectionKey] = e
        return e
    }

    /// The runtime of `pool` as the snapshot with `version` declares it. An array index for the
    /// newest snapshot this loop has seen; a request still running on an older one gets a
    /// runtime made for it (same endpoint state, found by address).
    func runtime(_ pool: PoolSpec, version: Int, balancers: BalancerRegistry) -> PoolRuntime {
        if version == runtimeVersion, pool.index < runtimes.count, let r = runtimes[pool.index] { return r }
        let r = PoolRuntime(balancer: balancers.entry(pool, version: version),
                            endpoints: pool.endpoints.map { endpoint($0) })
        if version > runtimeVersion {
            runtimeVersion = version
            runtimes = []
        }
        if version == runtimeVersion && version >= 0 {
            if runtimes.count <= pool.index { runtimes.append(contentsOf: repeatElement(nil, count: pool.index + 1 - runtimes.count)) }
            runtimes[pool.index] = r
        }
        return r
    }

    /// A pooled idle connection, newest first, or nil.
    func takeIdle(_ ep: EndpointConnections) -> UpstreamConnection? {
        while let entry = ep.idle.popLast() {
            if entry.connection.isUsable { return entry.connection }
            entry.connection.close()
        }
        return nil
    }

    /// Opens a new connection, and with the pool's TLS completes the handshake, within the
    /// pool's connect timeout for both. Fails with an `UpstreamFailure`.
    func connect(_ ep: EndpointConnections, _ spec: EndpointSpec, pool: PoolSpec) -> EventLoopFuture<UpstreamConnection> {
        let address: SocketAddress
        do {
            address = try resolve(ep, spec)
        } catch {
            return eventLoop.makeFailedFuture(UpstreamFailure.connectFailed("cannot resolve \(spec.address): \(error)"))
        }
        ep.open += 1
        let handler = UpstreamConnection(endpoint: spec, connections: ep, upstreams: self)
        #if DEBUG
        tracker?.track(handler, .upstreamConnection)
        #endif
        let tls = pool.tls
        handler.tls = tls
        #if os(Linux)
        if let worker = eventLoop as? URingWorker {
            guard tls == nil else {
                handler.counted = false
                ep.open -= 1
                return eventLoop.makeFailedFuture(UpstreamFailure.connectFailed(
                    "\(spec.address): pool \(pool.id) uses TLS, which the io_uring engine does not carry yet"))
            }
            return URingSocket.connect(on: worker, to: address, timeout: .milliseconds(pool.connectTimeout), describe: spec.address)
                .map { [self] socket in
                    #if DEBUG
                    tracker?.track(socket, .channel)
                    #endif
                    socket.delegate = handler
                    handler.attach(io: socket)
                    socket.read()
                    return handler
                }
                .flatMapErrorThrowing { error -> UpstreamConnection in
                    if handler.counted { handler.counted = false; ep.open -= 1 }
                    throw error
                }
        }
        #endif
        let deadline = NIODeadline.now() + .milliseconds(pool.connectTimeout)
        let connected = ClientBootstrap(group: eventLoop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.milliseconds(pool.connectTimeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // A cleartext pool pays this nil check per connection made, nothing per request.
                    if let tls {
                        handler.handshake = try tls.addClientHandler(to: channel, serverName: spec.tlsServerName)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(to: address)
            .flatMapErrorThrowing { error -> any Channel in
                // The handler never saw its channel become inactive: count it out here.
                if handler.counted { handler.counted = false; ep.open -= 1 }
                if case ChannelError.connectTimeout = error {
                    throw UpstreamFailure.connectTimeout("no connection to \(spec.address) within \(pool.connectTimeout) ms")
                }
                throw UpstreamFailure.connectFailed("\(spec.address): \(error)")
            }
        guard tls != nil else { return connected.map { _ in handler } }
        return connected.flatMap { channel in
            guard let handshake = handler.handshake else { return channel.eventLoop.makeSucceededFuture(handler) }
            handler.handshake = nil
            return Self.awaitHandshake(handshake, on: channel, until: deadline, spec: spec, pool: pool).map { handler }
        }
    }

    /// The handshake's outcome, or a timeout at the connect deadline (the channel then closes).
    /// Everything here runs on the connection's loop.
    static func awaitHandshake(_ handshake: EventLoopFuture<Void>, on channel: any Channel, until deadline: NIODeadline,
                               spec: EndpointSpec, pool: PoolSpec) -> EventLoopFuture<Void> {
        // Whichever comes first completes `done`; a later completion of a promise is ignored.
        let done = channel.eventLoop.makePromise(of: Void.self)
        let timer = channel.eventLoop.scheduleTask(deadline: deadline) {
            done.fail(UpstreamFailure.connectTimeout("TLS handshake with \(spec.address) not complete within \(pool.connectTimeout) ms of connecting"))
            channel.close(promise: nil)
        }
        handshake.whenComplete { result in
            timer.cancel()
            switch result {
            case .success: done.succeed(())
            case .failure(let e): done.fail(UpstreamFailure.tlsFailed("\(spec.address)\(spec.tlsServerName.map { " (SNI \($0))" } ?? ""): \(e)"))
            }
        }
        return done.futureResult
    }

    /// A raw TCP connection to an endpoint of `pool`, for an L4 `pass` tunnel: the pool's
    /// balancer picks the endpoint (`UpstreamStage.decide`, as for HTTP), the pool's connect
    /// timeout applies. Not pooled, not counted in the endpoint's HTTP connections.
    func connectTunnel(_ pool: PoolSpec, version: Int, balancers: BalancerRegistry) -> EventLoopFuture<any Channel> {
        let runtime = runtime(pool, version: version, balancers: balancers)
        guard let decision = UpstreamStage.decide(pool, runtime.balancer, excluding: nil) else {
            return eventLoop.makeFailedFuture(UpstreamFailure.connectFailed("pool \(pool.id) has no eligible endpoint"))
        }
        let spec = pool.endpoints[decision.endpointIndex]
        let address: SocketAddress
        do {
            address = try resolve(runtime.endpoints[decision.endpointIndex], spec)
        } catch {
            return eventLoop.makeFailedFuture(UpstreamFailure.connectFailed("cannot resolve \(spec.address): \(error)"))
        }
        return ClientBootstrap(group: eventLoop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.milliseconds(pool.connectTimeout))
            .connect(to: address)
    }

    func resolve(_ ep: EndpointConnections, _ spec: EndpointSpec) throws -> SocketAddress {
        if let a = ep.resolved { return a }
        let a: SocketAddress
        if let ip = try? SocketAddress(ipAddress: spec.host, port: spec.port) {
            a = ip
        } else {
            // Names are resolved once per loop and kept (a blocking lookup, once).
            a = try SocketAddress.makeAddressResolvingHost(spec.host, port: spec.port)
        }
        ep.resolved = a
        return a
    }

    /// Returns a connection after a complete exchange: kept idle when reusable and room remains.
    func release(_ c: UpstreamConnection, pool: PoolSpec) {
        guard c.isUsable, !c.closing else { c.close(); return }
        let ep = c.connections
        if ep.idle.count >= pool.maxIdlePerEndpoint { c.close(); return }
        ep.idle.append(.init(connection: c, expires: (turnClock?.time ?? .now()) + .milliseconds(pool.idleTimeout)))
    }

    /// Called when a connection's channel closed.
    func closed(_ c: UpstreamConnection) {
        let ep = c.connections
        if c.counted { c.counted = false; ep.open -= 1 }
        if let i = ep.idle.firstIndex(where: { $0.connection === c }) { ep.idle.remove(at: i) }
    }

    func closeExpiredIdle(_ now: NIODeadline) {
        for ep in byAddress.values where ep.idle.contains(where: { $0.expires <= now }) {
            let expired = ep.idle.filter { $0.expires <= now }
            ep.idle.removeAll { $0.expires <= now }
            for e in expired { e.connection.close() }
        }
    }

    func closeAll() {
        for ep in byAddress.values {
            let list = ep.idle
            ep.idle = []
            for e in list { e.connection.close() }
        }
    }

    var idleCount: Int { byAddress.values.reduce(0) { $0 + $1.idle.count } }
    /// Connections open to the endpoint with this connection key (the address, for cleartext).
    func openCount(_ key: String) -> Int { byAddress[key]?.open ?? 0 }
}

enum UpstreamFailure: Error {
    case connectFailed(String)
    case connectTimeout(String)
    /// The TLS handshake failed: the upstream's certificate not verified, or the handshake refused.
    case tlsFailed(String)
}
