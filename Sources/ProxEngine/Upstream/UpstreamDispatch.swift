import NIOCore
import ProxCore
import ProxUpstream

/// Finds a connection for one upstream attempt, on the request's loop: the endpoint pick
/// (`UpstreamStage.decide`, the code dry-run runs too), in-flight counting, idle reuse, the
/// per-loop connection limit, and connecting. What it finds goes back to the exchange state
/// machine as `upstreamConnected` or `connectFailed`; connect errors are mapped to the failure
/// table's reasons here and nowhere else.
///
/// One per loop (`LoopState.dispatch`), a class so reaching it copies nothing.
final class UpstreamDispatch {
    enum Outcome {
        /// An idle pooled connection, usable now.
        case reused(UpstreamConnection)
        /// A new connection is being made.
        case connecting(EventLoopFuture<UpstreamConnection>)
        /// No connection: the reason, and a detail for the error log.
        case failed(ExchangeStateMachine.ConnectFailure, detail: String)
    }

    let upstreams: LoopUpstreamConnections
    let balancers: BalancerRegistry
    let loopCount: Int

    init(upstreams: LoopUpstreamConnections, balancers: BalancerRegistry, loopCount: Int) {
        self.upstreams = upstreams
        self.balancers = balancers
        self.loopCount = loopCount
    }

    /// First attempt: pick an endpoint of `pool`, reuse an idle connection to it or connect.
    func dispatch(_ ex: Exchange, _ pool: PoolSpec) -> Outcome {
        // The runtime is stored once (a store retains the new value and releases the old).
        if let runtime = ex.runtime { return dispatch(ex, pool, runtime) }
        let runtime = upstreams.runtime(pool, version: ex.ctx.snapshot.version, balancers: balancers)
        ex.runtime = runtime
        return dispatch(ex, pool, runtime)
    }

    private func dispatch(_ ex: Exchange, _ pool: PoolSpec, _ runtime: PoolRuntime) -> Outcome {
        let entry = runtime.balancer
        guard let decision = UpstreamStage.decide(pool, entry, excluding: nil) else {
            return .failed(.noEndpoint, detail: "pool \(pool.id) has no eligible endpoint")
        }
        let index = decision.endpointIndex
        if ex.endpointIndex >= 0 { entry.balancer.finished(ex.endpointIndex) }
        ex.endpointIndex = index
        entry.balancer.started(index)
        let connections = runtime.endpoints[index]
        ex.ctx.endpoint = connections.address
        if let c = upstreams.takeIdle(connections) { return .reused(c) }
        guard connections.open < UpstreamStage.perLoopConnectionLimit(pool, loopCount: loopCount) else {
            return .failed(.maxConnections,
                           detail: "\(connections.address) has \(pool.maxConnectionsPerEndpoint) connections open")
        }
        return .connecting(upstreams.connect(connections, pool.endpoints[index], pool: pool))
    }

    /// A retry after a stale pooled connection: a fresh connection to the same endpoint.
    func retryFresh(_ ex: Exchange, _ pool: PoolSpec) -> Outcome {
        let index = ex.endpointIndex
        guard index >= 0, index < pool.endpoints.count else {
            return .failed(.noEndpoint, detail: "pool \(pool.id) has no eligible endpoint")
        }
        let endpoint = pool.endpoints[index]
        let connections = ex.runtime?.endpoints[index] ?? upstreams.endpoint(endpoint)
        return .connecting(upstreams.connect(connections, endpoint, pool: pool))
    }

    /// The failure-table reason for a connect error, with its detail for the error log.
    static func reason(_ error: any Error) -> (ExchangeStateMachine.ConnectFailure, String) {
        switch error {
        case UpstreamFailure.connectTimeout(let d): return (.timeout, d)
        case UpstreamFailure.connectFailed(let d): return (.refused, d)
        case UpstreamFailure.tlsFailed(let d): return (.tls, d)
        default: return (.refused, "\(error)")
        }
    }
}
