import ProxCore
import ProxUpstream
import Testing

@Suite struct BalancerTests {
    func picks(_ b: inout Balancer, _ n: Int, excluding: Int? = nil) -> [Int] {
        (0..<n).map { _ in b.pick(excluding: excluding)!.index }
    }

    @Test func roundRobinCyclesInOrder() {
        var b = Balancer(kind: .roundRobin, weights: [1, 1, 1])
        #expect(picks(&b, 7) == [0, 1, 2, 0, 1, 2, 0])
    }

    @Test func roundRobinSkipsExcludedAndZeroWeight() {
        var b = Balancer(kind: .roundRobin, weights: [1, 0, 1])
        #expect(picks(&b, 4) == [0, 2, 0, 2])
        #expect(picks(&b, 3, excluding: 0) == [2, 2, 2])
    }

    @Test func smoothWeightedRoundRobinSpreadsByWeight() {
        var b = Balancer(kind: .weightedRoundRobin, weights: [5, 1, 1])
        let p = picks(&b, 7)
        // nginx's smooth WRR sequence for 5,1,1: a a b a c a a
        #expect(p == [0, 0, 1, 0, 2, 0, 0])
        var counts = [0, 0, 0]
        for i in picks(&b, 700) { counts[i] += 1 }
        #expect(counts == [500, 100, 100])
    }

    @Test func randomFollowsWeights() {
        var b = Balancer(kind: .random, weights: [3, 1], seed: 42)
        var counts = [0, 0]
        for i in picks(&b, 40_000) { counts[i] += 1 }
        let share = Double(counts[0]) / 40_000
        #expect(share > 0.72 && share < 0.78)
    }

    @Test func leastRequestPrefersFewerInFlight() {
        var b = Balancer(kind: .leastRequest, weights: [1, 1], seed: 7)
        b.started(0); b.started(0); b.started(0)
        // With two endpoints, both are always drawn: the idle one wins every time.
        #expect(picks(&b, 50).allSatisfy { $0 == 1 })
        b.finished(0); b.finished(0); b.finished(0)
        b.started(1)
        #expect(picks(&b, 50).allSatisfy { $0 == 0 })
    }

    @Test func leastRequestNeverPicksExcluded() {
        var b = Balancer(kind: .leastRequest, weights: [1, 1, 1, 1], seed: 3)
        #expect(picks(&b, 200, excluding: 2).allSatisfy { $0 != 2 })
    }

    @Test func noEligibleEndpointGivesNil() {
        var b = Balancer(kind: .roundRobin, weights: [0, 0])
        #expect(b.pick() == nil)
        var one = Balancer(kind: .leastRequest, weights: [1])
        #expect(one.pick(excluding: 0) == nil)
    }

    @Test func registryKeepsStateAcrossIdenticalReloadAndResetsOnChange() {
        let r = BalancerRegistry(seed: 1)
        let pool = PoolSpec(id: "api", index: 0, endpoints: [EndpointSpec(host: "127.0.0.1", port: 1), EndpointSpec(host: "127.0.0.1", port: 2)])
        #expect(r.withBalancer(pool) { $0.pick()!.index } == 0)
        // A new snapshot with the same pool keeps the position (state outlives the reload).
        let same = PoolSpec(id: "api", index: 3, endpoints: pool.endpoints)
        #expect(r.withBalancer(same) { $0.pick()!.index } == 1)
        let changed = PoolSpec(id: "api", index: 0, endpoints: [EndpointSpec(host: "127.0.0.1", port: 9)] + pool.endpoints)
        #expect(r.withBalancer(changed) { $0.pick()!.index } == 0)
    }
}
