import NIOCore
import NIOPosix
import ProxCore

/// One event loop's upstream connections, keyed by endpoint address so they outlive a reload
/// that keeps the endpoint. Connections are made with this loop as their group, so a request
/// and its upstream connection share a thread.
final class UpstreamPool {
    let eventLoop: any EventLoop
    struct Idle {
        let connection: UpstreamConnection
        let expires: NIODeadline
    }
    var idle: [String: [Idle]] = [:]
    /// Connections open per endpoint (idle or busy) on this loop.
    var open: [String: Int] = [:]
    var resolved: [String: SocketAddress] = [:]

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    /// A pooled idle connection to `endpoint`, newest first, or nil.
    func takeIdle(_ endpoint: EndpointSpec) -> UpstreamConnection? {
        // Mutated in place (no copy of the list per request).
        while let entry = idle[endpoint.address]?.popLast() {
            if entry.connection.isUsable { return entry.connection }
            entry.connection.close()
        }
        return nil
    }

    func canOpen(_ endpoint: EndpointSpec, limit: Int) -> Bool {
        (open[endpoint.address] ?? 0) < limit
    }

    /// Opens a new connection. Fails with `UpstreamFailure.connect...`.
    func connect(_ endpoint: EndpointSpec, pool: PoolSpec) -> EventLoopFuture<UpstreamConnection> {
        let address: SocketAddress
        do {
            address = try resolve(endpoint)
        } catch {
            return eventLoop.makeFailedFuture(UpstreamFailure.connectFailed("cannot resolve \(endpoint.address): \(error)"))
        }
        open[endpoint.address, default: 0] += 1
        let key = endpoint.address
        let handler = UpstreamConnection(endpoint: endpoint, pool: self)
        return ClientBootstrap(group: eventLoop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.milliseconds(pool.connectTimeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(to: address)
            .map { _ in handler }
            .flatMapErrorThrowing { [self] error in
                open[key, default: 1] -= 1
                if case ChannelError.connectTimeout = error {
                    throw UpstreamFailure.connectTimeout("no connection to \(key) within \(pool.connectTimeout) ms")
                }
                throw UpstreamFailure.connectFailed("\(key): \(error)")
            }
    }

    func resolve(_ endpoint: EndpointSpec) throws -> SocketAddress {
        if let a = resolved[endpoint.address] { return a }
        let a: SocketAddress
        if let ip = try? SocketAddress(ipAddress: endpoint.host, port: endpoint.port) {
            a = ip
        } else {
            // Names are resolved once per loop and kept (a blocking lookup, once).
            a = try SocketAddress.makeAddressResolvingHost(endpoint.host, port: endpoint.port)
        }
        resolved[endpoint.address] = a
        return a
    }

    /// Returns a connection after a complete exchange: kept idle when reusable and room remains.
    func release(_ c: UpstreamConnection, pool: PoolSpec) {
        guard c.isUsable, !c.closing else { c.close(); return }
        let key = c.endpoint.address
        if (idle[key]?.count ?? 0) >= pool.maxIdlePerEndpoint { c.close(); return }
        idle[key, default: []].append(Idle(connection: c, expires: .now() + .milliseconds(pool.idleTimeout)))
    }

    /// Called when a connection's channel closed.
    func closed(_ c: UpstreamConnection) {
        let key = c.endpoint.address
        open[key, default: 1] -= 1
        if open[key] ?? 0 <= 0 { open[key] = nil }
        if let i = idle[key]?.firstIndex(where: { $0.connection === c }) {
            idle[key]!.remove(at: i)
        }
    }

    func closeExpiredIdle(_ now: NIODeadline) {
        for (key, list) in idle where list.contains(where: { $0.expires <= now }) {
            var keep: [Idle] = []
            for e in list { if e.expires <= now { e.connection.close() } else { keep.append(e) } }
            idle[key] = keep
        }
    }

    func closeAll() {
        for (_, list) in idle { for e in list { e.connection.close() } }
        idle = [:]
    }

    var idleCount: Int { idle.values.reduce(0) { $0 + $1.count } }
}

enum UpstreamFailure: Error {
    case connectFailed(String)
    case connectTimeout(String)
}
