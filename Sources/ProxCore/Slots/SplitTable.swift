/// A route's traffic-split slot as compiled: a weighted choice between pools, as a
/// cumulative-weight table. Entry `i` owns the positions `[upper[i-1], upper[i])` of
/// `0..<total`; an entry of weight 0 owns none. The decision is `TrafficSplit` (ProxUpstream).
// A class whose bands live in memory it owns (immutable after init, freed in deinit): the
// decision reads them through a plain pointer, with no retain of an array per request
// (each such retain and release cost ~27 instructions, measured with callgrind).
public final class SplitTable: @unchecked Sendable {
    /// One entry as the decision reads it: its band's upper bound and its pool.
    public struct Band: Sendable {
        public let upper: UInt64
        public let pool: Int
    }
    /// The decision's table, in the config's order. Valid while the table lives.
    public let bands: UnsafeBufferPointer<Band>
    /// Pool indices into `Snapshot.pools`, in the config's order.
    public let pools: [Int]
    /// Pool ids, for traces.
    public let names: [String]
    public let weights: [UInt64]
    /// Cumulative weights: `upper[i]` is the sum of `weights[0...i]`.
    public let upper: [UInt64]
    /// The sum of the weights; more than 0.
    public let total: UInt64

    /// nil when the weights do not sum to more than 0 or the arrays differ in length.
    public init?(pools: [Int], names: [String], weights: [UInt64]) {
        guard pools.count == names.count, pools.count == weights.count, !pools.isEmpty else { return nil }
        var sum: UInt64 = 0
        var upper: [UInt64] = []
        upper.reserveCapacity(weights.count)
        for w in weights {
            let (s, overflow) = sum.addingReportingOverflow(w)
            if overflow { return nil }
            sum = s
            upper.append(sum)
        }
        guard sum > 0 else { return nil }
        let storage = UnsafeMutableBufferPointer<Band>.allocate(capacity: pools.count)
        for i in pools.indices { storage.initializeElement(at: i, to: Band(upper: upper[i], pool: pools[i])) }
        self.bands = UnsafeBufferPointer(storage)
        self.pools = pools
        self.names = names
        self.weights = weights
        self.upper = upper
        self.total = sum
    }

    deinit { UnsafeMutableBufferPointer(mutating: bands).deallocate() }

    /// The band of entry `i`: `[lower, upper)`.
    public func band(_ i: Int) -> (lower: UInt64, upper: UInt64) {
        (i == 0 ? 0 : upper[i - 1], upper[i])
    }
}
