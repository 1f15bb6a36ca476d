import ProxCore

/// One event loop's balancer state for every pool, keyed by pool id so it outlives a reload
/// (ARCHITECTURE.md contract 3). A reload that keeps a pool's endpoints keeps its state; one
/// that changes them starts the pool's balancer afresh.
public final class BalancerRegistry {
    /// A pool's balancer, by reference so a lookup copies nothing.
    public final class Entry {
        let endpoints: [EndpointSpec]
        let kind: BalancerKind
        public var balancer: Balancer
        /// The snapshot version the entry was last checked against.
        var version: Int

        init(endpoints: [EndpointSpec], kind: BalancerKind, balancer: Balancer, version: Int) {
            self.endpoints = endpoints
            self.kind = kind
            self.balancer = balancer
            self.version = version
        }
    }
    var entries: [String: Entry] = [:]
    let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    /// The entry for `pool`, created or rebuilt when the pool's shape changed. The shape is
    /// compared once per snapshot version, not per request.
    public func entry(_ pool: PoolSpec, version: Int = -1) -> Entry {
        if let e = entries[pool.id] {
            if e.version == version && version >= 0 { return e }
            if e.endpoints == pool.endpoints && e.kind == pool.balancer {
                e.version = version
                return e
            }
        }
        let e = Entry(endpoints: pool.endpoints, kind: pool.balancer,
                      balancer: Balancer(kind: pool.balancer, weights: pool.endpoints.map(\.weight),
                                         seed: seed ^ UInt64(truncatingIfNeeded: pool.id.utf8.count) &* 0x9E37_79B9),
                      version: version)
        entries[pool.id] = e
        return e
    }

    public func withBalancer<R>(_ pool: PoolSpec, version: Int = -1, _ body: (inout Balancer) -> R) -> R {
        body(&entry(pool, version: version).balancer)
    }
}
