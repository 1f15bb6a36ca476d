import ProxCore

/// Endpoint choice for one pool on one event loop. Not thread-safe by design: each event loop
/// owns its own `Balancer` per pool (no locks on the hot path), so round-robin positions and
/// in-flight counts are per loop, the way nginx workers and HAProxy threads keep theirs.
public struct Balancer: Sendable {
    public let kind: BalancerKind
    /// Endpoint weights, in the pool's order.
    public private(set) var weights: [Int]
    /// Requests in flight per endpoint (for `least_request`); the engine increments on
    /// dispatch and decrements on completion.
    public private(set) var inFlight: [Int]
    var next = 0
    /// Smooth weighted round robin (as nginx does it): current weights.
    var current: [Int]
    var rng: SplitMix64
    /// Every weight is positive (decided once): picks need no candidate list.
    let allEligible: Bool
    let totalWeight: Int

    public init(kind: BalancerKind, weights: [Int], seed: UInt64 = 0x9E37_79B9_7F4A_7C15) {
        self.kind = kind
        self.weights = weights.map { max(0, $0) }
        self.inFlight = Array(repeating: 0, count: weights.count)
        self.current = Array(repeating: 0, count: weights.count)
        self.rng = SplitMix64(seed: seed)
        self.allEligible = weights.allSatisfy { $0 > 0 }
        self.totalWeight = max(1, weights.reduce(0) { $0 + max(0, $1) })
    }

    /// The endpoint chosen, with the numbers that explain why. The explanation is text only
    /// when asked for (dry-run): formatting it per request cost ~2k instructions.
    public struct Choice: Sendable, Equatable {
        public var index: Int
        let kind: BalancerKind
        let a: Int
        let b: Int

        public var why: String {
            switch kind {
            case .roundRobin: return "round_robin: next in turn (position \(a) of \(b))"
            case .weightedRoundRobin: return "weighted_round_robin: highest current weight (weight \(a) of \(b))"
            case .random: return "random: weighted draw (weight \(a) of \(b))"
            case .leastRequest:
                if a < 0 { return "least_request: only eligible endpoint" }
                if a == b { return "least_request: two random choices tie at \(a) in flight; the heavier, else the first drawn, wins" }
                return "least_request: two random choices, \(a) in flight beats \(b)"
            }
        }
    }

    /// Picks an endpoint, skipping `excluded` ones (a failed attempt's endpoint). Returns nil when
    /// every endpoint is excluded or has weight 0.
    public mutating func pick(excluding excluded: Int? = nil) -> Choice? {
        let n = weights.count
        guard n > 0 else { return nil }
        let w = weights
        func eligible(_ i: Int) -> Bool { i != excluded && w[i] > 0 }
        switch kind {
        case .roundRobin:
            for _ in 0..<n {
                let i = next % n
                next = (next + 1) % n
                if eligible(i) { return Choice(index: i, kind: kind, a: i, b: n) }
            }
            return nil
        case .weightedRoundRobin:
            var total = 0, best = -1
            for i in 0..<n where eligible(i) {
                current[i] += weights[i]
                total += weights[i]
                if best < 0 || current[i] > current[best] { best = i }
            }
            guard best >= 0 else { return nil }
            current[best] -= total
            return Choice(index: best, kind: kind, a: weights[best], b: total)
        case .random:
            if excluded == nil && allEligible {
                // Common case: no exclusion, every weight positive; no candidate list to build.
                var r = Int(rng.next() % UInt64(totalWeight))
                for i in 0..<n {
                    r -= weights[i]
                    if r < 0 { return Choice(index: i, kind: kind, a: weights[i], b: totalWeight) }
                }
                return Choice(index: n - 1, kind: kind, a: weights[n - 1], b: totalWeight)
            }
            let candidates = (0..<n).filter(eligible)
            guard !candidates.isEmpty else { return nil }
            // Weighted random.
            let total = candidates.reduce(0) { $0 + weights[$1] }
            var r = Int(rng.next() % UInt64(total))
            for i in candidates {
                r -= weights[i]
                if r < 0 { return Choice(index: i, kind: kind, a: weights[i], b: total) }
            }
            let last = candidates[candidates.count - 1]
            return Choice(index: last, kind: kind, a: weights[last], b: total)
        case .leastRequest:
            if excluded == nil && allEligible && n >= 2 {
                let a = Int(rng.next() % UInt64(n))
                var b = Int(rng.next() % UInt64(n - 1))
                if b >= a { b += 1 }
                let pickA = inFlight[a] < inFlight[b] || (inFlight[a] == inFlight[b] && weights[a] >= weights[b])
                let w = pickA ? a : b, l = pickA ? b : a
                return Choice(index: w, kind: kind, a: inFlight[w], b: inFlight[l])
            }
            let candidates = (0..<n).filter(eligible)
            guard !candidates.isEmpty else { return nil }
            if candidates.count == 1 { return Choice(index: candidates[0], kind: kind, a: -1, b: -1) }
            // Power of two choices: two distinct random endpoints, the one with fewer in flight wins
            // (ties go to the higher weight, then the first drawn).
            let ia = Int(rng.next() % UInt64(candidates.count))
            var ib = Int(rng.next() % UInt64(candidates.count - 1))
            if ib >= ia { ib += 1 }
            let a = candidates[ia], b = candidates[ib]
            let pickA = inFlight[a] < inFlight[b] || (inFlight[a] == inFlight[b] && weights[a] >= weights[b])
            let w = pickA ? a : b, l = pickA ? b : a
            return Choice(index: w, kind: kind, a: inFlight[w], b: inFlight[l])
        }
    }

    public mutating func started(_ i: Int) { if i < inFlight.count { inFlight[i] += 1 } }
    public mutating func finished(_ i: Int) { if i < inFlight.count && inFlight[i] > 0 { inFlight[i] -= 1 } }
}
