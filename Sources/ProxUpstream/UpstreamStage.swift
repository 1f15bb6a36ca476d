import ProxCore

/// Where an upstream attempt goes, decided without sockets: the pool, the endpoint the
/// balancer picked, and the deadlines the attempt runs under. `serve` (through the engine's
/// `UpstreamDispatch`) and `dry-run` make it with the same code, `UpstreamStage.decide`.
public struct UpstreamDecision {
    public let pool: PoolSpec
    public let endpointIndex: Int
    /// The balancer's choice, which explains itself (`choice.why`) when asked.
    public let choice: Balancer.Choice

    public init(pool: PoolSpec, endpointIndex: Int, choice: Balancer.Choice) {
        self.pool = pool
        self.endpointIndex = endpointIndex
        self.choice = choice
    }

    public var endpoint: EndpointSpec { pool.endpoints[endpointIndex] }
    public var address: String { pool.endpoints[endpointIndex].address }
    /// Milliseconds to make the connection.
    public var connectTimeout: TimeAmountMillis { pool.connectTimeout }
    /// Milliseconds from the whole request sent to the response head (the per-try budget).
    public var responseTimeout: TimeAmountMillis { pool.responseHeaderTimeout }
    /// Milliseconds the response body may stall.
    public var bodyIdleTimeout: TimeAmountMillis { pool.bodyIdleTimeout }
}

/// The pure part of sending a request upstream. No I/O: the pick advances the balancer's own
/// state (round-robin position, random draws) and nothing else.
public enum UpstreamStage {
    /// Picks an endpoint of `pool` through its balancer `entry`, skipping `excluding` (a failed
    /// attempt's endpoint). Nil when no endpoint is eligible (`no_upstream_endpoint`).
    /// In-flight counting (`Balancer.started`/`finished`) is the caller's, once it dispatches.
    @inlinable
    public static func decide(_ pool: PoolSpec, _ entry: BalancerRegistry.Entry, excluding: Int? = nil) -> UpstreamDecision? {
        guard let choice = entry.balancer.pick(excluding: excluding) else { return nil }
        return UpstreamDecision(pool: pool, endpointIndex: choice.index, choice: choice)
    }

    /// The per-loop share of the pool's per-endpoint connection limit (at least one).
    @inlinable
    public static func perLoopConnectionLimit(_ pool: PoolSpec, loopCount: Int) -> Int {
        max(1, (pool.maxConnectionsPerEndpoint + loopCount - 1) / max(1, loopCount))
    }
}
