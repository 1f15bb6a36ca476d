import ProxCore
import Testing
@testable import ProxUpstream

@Suite struct TrafficSplitTests {
    let t = SplitTable(pools: [3, 5], names: ["stable", "canary"], weights: [90, 10])!

    func draw(_ f: Double) -> UInt64 { TrafficSplit.parseDraw(String(f))! }

    @Test func bandsFollowTheWeights() {
        #expect(TrafficSplit.choose(t, draw: 0) == 0)
        #expect(TrafficSplit.choose(t, draw: draw(0.42)) == 0)
        #expect(TrafficSplit.choose(t, draw: draw(0.8999)) == 0)
        #expect(TrafficSplit.choose(t, draw: draw(0.9)) == 1)
        #expect(TrafficSplit.choose(t, draw: draw(0.95)) == 1)
        #expect(TrafficSplit.choose(t, draw: UInt64.max) == 1)
    }

    @Test func zeroWeightGetsNothing() {
        let z = SplitTable(pools: [0, 1, 2], names: ["a", "b", "c"], weights: [1, 0, 1])!
        var seen = [0, 0, 0]
        var rng = SplitMix64(seed: 7)
        for _ in 0..<10_000 { seen[TrafficSplit.choose(z, draw: rng.next())] += 1 }
        #expect(seen[1] == 0)
        #expect(abs(seen[0] - seen[2]) < 500)
    }

    @Test func shareIsTheWeight() {
        var canary = 0
        var rng = SplitMix64(seed: 42)
        for _ in 0..<100_000 where TrafficSplit.choose(t, draw: rng.next()) == 1 { canary += 1 }
        #expect(canary > 9_500 && canary < 10_500)
    }

    @Test func parseDraw() {
        #expect(TrafficSplit.parseDraw("0.5") == UInt64(1) << 63)
        #expect(TrafficSplit.parseDraw("0") == 0)
        #expect(TrafficSplit.parseDraw("12345") == 12345)
        #expect(TrafficSplit.parseDraw("1.0") == nil)
        #expect(TrafficSplit.parseDraw("0.x") == nil)
        #expect(TrafficSplit.parseDraw(".25") == UInt64(1) << 62)
        #expect(TrafficSplit.parseDraw("-0.1") == nil)
        #expect(TrafficSplit.parseDraw("x") == nil)
    }

    @Test func explainNamesTheBand() {
        let why = TrafficSplit.explain(t, draw: draw(0.95), chosen: 1)
        #expect(why == "draw 0.9500 is position 95 of 100, in canary's band 90-100")
    }

    @Test func invalidTables() {
        #expect(SplitTable(pools: [0], names: ["a"], weights: [0]) == nil)
        #expect(SplitTable(pools: [], names: [], weights: []) == nil)
        #expect(SplitTable(pools: [0, 1], names: ["a", "b"], weights: [UInt64.max, 1]) == nil)
    }
}
