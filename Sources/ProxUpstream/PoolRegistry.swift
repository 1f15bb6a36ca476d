import ProxCore

/// One event loop's balancer state for every pool, keyed by pool id so it outlives a reload
/// (ARCHITECTURE.md contract 3). A reload that keeps a pool's endpoints keeps its state; one
/// that changes them starts the pool's balancer afresh.
public final class BalancerRegistry {
    struct Entry {
        var endpoints: [EndpointSpec]
        var kind: BalancerKind
        var balancer: Balancer
        /// The snapshot version the entry was last checked against.
        var version: Int
    }
    var entries: [String: Entry] = [:]
    let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    /// The balancer for `pool`, created or rebuilt when the pool's shape changed. The shape is
    /// compared once per snapshot version, not per request.
    public func withBalancer<R>(_ pool: PoolSpec, version: Int = -1, _ body: (inout Balancer) -> R) -> R {
        if let v = entries[pool.id]?.version, v == version, version >= 0 {
            return body(&entries[pool.id]!.balancer)
        }
        if let e = entries[pool.id], e.endpoints == pool.endpoints, e.kind == pool.balancer {
            entries[pool.id]!.version = version
        } else {
            entries[pool.id] = Entry(endpoints: pool.endpoints, kind: pool.balancer,
                                     balancer: Balancer(kind: pool.balancer, weights: pool.endpoints.map(\.weight),
                                                        seed: seed ^ UInt64(truncatingIfNeeded: pool.id.utf8.count) &* 0x9E37_79B9),
                                     version: version)
        }
        return body(&entries[pool.id]!.balancer)
    }
}
