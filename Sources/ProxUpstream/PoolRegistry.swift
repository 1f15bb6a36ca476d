import ProxCore

/// One event loop's balancer state for every pool, keyed by pool id so it outlives a reload
/// (ARCHITECTURE.md contract 3). A reload that keeps a pool's endpoints keeps its state; one
/// that changes them starts the pool's balancer afresh.
public final class BalancerRegistry {
    struct Entry {
        var endpoints: [EndpointSpec]
        var kind: BalancerKind
        var balancer: Balancer
    }
    var entries: [String: Entry] = [:]
    let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    /// The balancer for `pool`, created or rebuilt when the pool's shape changed.
    public func withBalancer<R>(_ pool: PoolSpec, _ body: (inout Balancer) -> R) -> R {
        if entries[pool.id] == nil || entries[pool.id]!.endpoints != pool.endpoints || entries[pool.id]!.kind != pool.balancer {
            entries[pool.id] = Entry(endpoints: pool.endpoints, kind: pool.balancer,
                                     balancer: Balancer(kind: pool.balancer, weights: pool.endpoints.map(\.weight),
                                                        seed: seed ^ UInt64(truncatingIfNeeded: pool.id.hashValue)))
        }
        return body(&entries[pool.id]!.balancer)
    }
}
